"""Turn run directories into the paper's tables and figures: ``report_main(run_dirs, out)``.

Runs whose resolved configs differ only in ``seed_everything`` (and ``loop.run_dir``) form one group; every number
in the report is a mean +- sample standard deviation (ddof=1) over the seeds of a group. Outputs, under ``out``:

    summary.md         what the report can and cannot tell, tables per dataset/group, FID (Table 1 layout) with its
                       features, ablations, section-5 bias amplification, the runs' environments (versions, GPUs)
    results.csv        every result row of every run (group and run_dir columns; lists/dicts JSON-encoded)
    aggregate.csv      group x classifier x generation x metric: mean, std (ddof=1), n
    conjecture.csv     trend verdicts, A_t and endpoint ratios with t intervals, equation-(6) fits with intervals and
                       F-tests (reporting/trend.py, conjecture.py, conjecture_summary.py)
    comparisons.csv    the paper's comparative claims with intervals: biased vs unbiased, pretrained vs scratch,
                       worst vs best subgroup, Hard ImageNet's accuracy-generation correlation
                       (reporting/comparisons.py)
    figures/*.png      metric curves (Figs. 3a/4a/5/6), pooled vs per-class overview, ranked subgroup accuracy
                       (3b/4b/7), FID, ablations (8), per-generation sample sheets stacked top to bottom (10-12);
                       the plots also as .pdf and .svg (vector) when ``formats`` asks for them
    tensorboard/       the HParams view of the runs (reporting/hparams.py)

Every problem with the inputs or with ``out`` is found before anything is written (one ``ConfigError``).

A wing above reporting adds its own section without reporting importing it: ``report_main(..., sections=[f])`` calls
``f(groups, figures_dir, written, formats)`` after the generic figures; ``f`` draws what it wants into ``figures_dir``
(appending the paths to ``written``) and returns Markdown for summary.md ("" for none).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from common.errors import ConfigError
from records.results import reading_metrics_of
from reporting.caveats import caveat_lines
from reporting.comparisons import comparisons, comparisons_markdown, write_comparisons_csv
from reporting.conjecture import analyse_group
from reporting.conjecture_summary import conjecture_markdown, write_conjecture_csv
from reporting.environment import environment_markdown, version_warning
from reporting.figures import (
    comparison_name,
    overview_name,
    parse_formats,
    plot_ablation,
    plot_comparison,
    plot_fid,
    plot_metrics,
    plot_overview,
    plot_ranked,
    stack_sample_sheets,
)
from reporting.hparams import check_tensorboard_dir, write_hparams
from reporting.markdown import summary_markdown
from reporting.readings import leading_reading, reading_order
from reporting.runs import Group, Run, expand_run_dirs, group_runs, load_run
from reporting.statistics import aggregate, fid_by_generation
from reporting.tables import write_aggregate_csv, write_results_csv

#: an extra summary.md section: (groups, figures folder, written paths, formats) -> Markdown ("" for none)
ReportSection = Callable[[list[Group], Path, list[Path], Sequence[str]], str]


def check_out_dir(out: str, runs: list[Run]) -> Path:
    """``--out`` must be a folder that can be created or written, and not a run directory (its tensorboard/ and
    files would mix with the run's). Checked before any work; creates nothing."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {out} is an existing file, not a folder: pass a folder for the report "
                          "(it is created when missing)")
    if any(path.resolve() == run.path.resolve() for run in runs):
        raise ConfigError(f"--out {out} is one of the run directories: write the report to a folder of its own, "
                          f"e.g. --out {path / 'report'}")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"--out {out} cannot be created: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out} cannot be written: no write permission on {existing} (or a read-only "
                          "filesystem); choose another folder")
    check_tensorboard_dir(path / "tensorboard")
    return path


def _figures(group: Group, stats: dict, figures: Path, written: list[Path], formats: Sequence[str]) -> str | None:
    """The group's figures in every one of ``formats`` (the sample sheets, raster images, as PNG only); returns the
    file name of its pooled-vs-per-class overview PNG (None without subgroups)."""
    drawn = plot_overview(group, stats, figures / overview_name(group), written, formats)
    overview = overview_name(group) if drawn is not None else None
    suffixes = {"pooled": "metrics", "per_class": "metrics_per_class", "cells": "metrics_cells"}
    for reading in reading_order(group.facts):  # the dataset's leading reading first
        metrics = ["acc", *reading_metrics_of(reading)]
        present = [m for m in metrics if any(k[2] == m and v[2] for k, v in stats.items())]
        if [m for m in present if m != "acc"] or (present and reading == "pooled"):
            plot_metrics(group, stats, present, figures / f"{group.stem}__{suffixes[reading]}.png", written,
                         reading=reading, formats=formats)
    n_ranks = max((len(r.get("acc_rank") or []) for r in group.rows), default=0)
    if n_ranks:
        plot_ranked(group, stats, n_ranks, figures / f"{group.stem}__ranked_subgroups.png", written, formats)
    kinds = sorted({m.split(".", 1)[1] for (_, _, m) in stats if m.startswith("ablation_acc.")})
    if kinds:
        plot_ablation(group, stats, kinds, figures / f"{group.stem}__ablation.png", written, formats)
    stack_sample_sheets(group.runs[0], figures / f"{group.stem}__samples_seed{group.runs[0].seed}.png", written)
    return overview


def report_main(run_dirs: list[str], out: str, formats: str | Sequence[str] = ("png",),
                sections: Sequence[ReportSection] = ()) -> None:
    """Read the run directories (globs allowed), group seeds, and write the report into ``out``, its figures in
    every one of ``formats`` (``"png,pdf,svg"`` or a sequence of those names) and always as PNG, which summary.md
    links; each of ``sections`` adds its part after the generic ones."""
    asked = parse_formats(formats if isinstance(formats, str) else ",".join(formats))
    formats = ("png", *(f for f in asked if f != "png"))
    paths = expand_run_dirs(run_dirs)
    runs = [load_run(p) for p in paths]  # every error surfaces before anything is written
    groups = group_runs(runs)
    out_dir = check_out_dir(out, runs)

    stats_by_group = {g.name: aggregate(g) for g in groups}
    fids = {g.name: fid_by_generation(g) for g in groups}
    conjecture = [c for g in groups for c in analyse_group(
        g.name, g.dataset, g.rows, {run.seed: run.blocks for run in g.runs}, leading_reading(g.facts))]
    compared = comparisons(groups)
    try:
        written = _write(groups, stats_by_group, fids, conjecture, compared, out_dir, formats, sections)
    except OSError as err:
        raise ConfigError(f"cannot write the report to {out_dir} ({err.strerror or err}: {err.filename}); what was "
                          "written before the failure is incomplete") from err
    print(f"[genbias] report of {len(runs)} run(s) in {len(groups)} group(s) written to {out_dir}:", flush=True)
    for p in written:
        print(f"  {p}", flush=True)
    for line in caveat_lines(groups, stats_by_group, [g for g in groups if fids.get(g.name)]):
        print(f"[genbias] note: {line.removeprefix('- ').replace('**', '')}", flush=True)
    for result in conjecture:
        print(f"[genbias] {result.group} / {result.classifier} ({result.measure}): {result.trend.text()}", flush=True)
    for comparison in compared:
        if comparison.between_groups:  # the per-group ones (Figs. 7, 9) are in summary.md and comparisons.csv
            print(f"[genbias] {comparison.text()}", flush=True)
    warning = version_warning(runs)
    if warning:
        print(f"[genbias] warning: {warning}", file=sys.stderr, flush=True)
    print(f"[genbias] compare the runs in TensorBoard's HPARAMS tab: tensorboard --logdir {out_dir / 'tensorboard'}",
          flush=True)


def _write(groups: list[Group], stats_by_group: dict, fids: dict, conjecture: list, compared: list,
           out_dir: Path, formats: Sequence[str], sections: Sequence[ReportSection] = ()) -> list[Path]:
    figures = out_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    write_results_csv(groups, out_dir / "results.csv")
    write_aggregate_csv(groups, stats_by_group, out_dir / "aggregate.csv")
    write_conjecture_csv(conjecture, out_dir / "conjecture.csv")
    write_comparisons_csv(compared, out_dir / "comparisons.csv")
    written += [out_dir / "results.csv", out_dir / "aggregate.csv", out_dir / "conjecture.csv",
                out_dir / "comparisons.csv"]
    overview: dict[str, str] = {}
    for group in groups:
        name = _figures(group, stats_by_group[group.name], figures, written, formats)
        if name:
            overview[group.name] = name
    by_dataset: dict[str, list[Group]] = {}
    for group in groups:
        by_dataset.setdefault(group.dataset, []).append(group)
    for dataset, members in by_dataset.items():
        if len(members) > 1:  # a sweep over regimes, a mitigation on and off, any grid: the groups side by side
            plot_comparison(members, stats_by_group, figures / comparison_name(dataset), written, formats)
    if any(fids.values()):
        plot_fid(groups, fids, figures / "fid.png", written, formats)
    extra = "".join(section(groups, figures, written, formats) for section in sections)
    # the summary links the PNGs (what a Markdown viewer shows); the PDF and SVG copies lie beside them
    text = summary_markdown(groups, stats_by_group, fids, conjecture_markdown(conjecture) + "\n"
                            + comparisons_markdown(compared),
                            [p for p in written if p.parent == figures and p.suffix == ".png"], overview) + extra
    text += "\n" + "\n".join(environment_markdown([run for group in groups for run in group.runs]))
    (out_dir / "summary.md").write_text(text)
    written.append(out_dir / "summary.md")
    written.append(out_dir / "tensorboard")
    write_hparams(groups, out_dir / "tensorboard")
    return written
