"""summary.md: what the report can and cannot tell first, then per dataset and group the metric tables, the
generator FID in the layout of the paper's Table 1, the section-5 analysis and the figures."""

from __future__ import annotations

import math
from pathlib import Path

from records.layout import SAMPLES_SHEETS, STATE_FILE
from records.results import label, reading_metrics_of
from reporting.caveats import caveat_lines, fid_features_text, seed_phrase
from reporting.chance import chance_note
from reporting.readings import READING_REASONS, leading_reading, reading_order, reading_title
from reporting.runs import Group
from reporting.setup import classifier_settings, filter_chain
from reporting.statistics import INFINITE_SUFFIX, Stat, fid_by_generation


def fmt_cell(stat: Stat | None, row_n: int | None = None, digits: int = 4, infinite: Stat | None = None) -> str:
    """``mean ± std``; ``-inf (k of n seeds)`` where ``infinite`` says k seeds were infinite."""
    if stat is None or stat[2] == 0:
        return "-"
    mean, std, n = stat
    if infinite is not None and math.isinf(mean):
        return f"{mean} ({int(infinite[0])} of {n} seeds)"
    text = f"{mean:.{digits}f}" if not math.isfinite(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"
    if row_n is not None and n != row_n:
        text += f" (n={n})"
    return text


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _metric_table(stats: dict, classifier: str, generations: list[int], metrics: list[str]) -> list[str]:
    rows = []
    for g in generations:
        cells = [stats.get((classifier, g, m)) for m in metrics]
        ns = [c[2] for c in cells if c is not None and c[2] > 0]
        if not ns:
            continue
        n = max(ns)
        rows.append([str(g), *(fmt_cell(c, n, infinite=stats.get((classifier, g, m + INFINITE_SUFFIX)))
                               for c, m in zip(cells, metrics)), str(n)])
    return _table(["generation", *(label(m) for m in metrics), "n"], rows)


def _setup_lines(group: Group, stats: dict) -> list[str]:
    """Each classifier's lr, batch size and epochs, the filter chain and the realised synthetic share per generation
    (the first run's config: the runs of a group differ only in the seed)."""
    run = group.runs[0]
    rows = []
    for setting in classifier_settings(run):
        trained = [int(r["epochs"]) for r in group.rows if r["classifier"] == setting["name"] and r.get("epochs")]
        rows.append([str(setting["name"]), str(setting["arch"]), f"{setting['lr']:g}",
                     str(setting["batch_size"] or "-"),
                     f"{setting['max_epochs']} (patience {setting['patience']})",
                     f"{sum(trained) / len(trained):.1f}" if trained else "-",
                     "ImageNet" if setting["pretrained"] else "scratch"])
    lines = ["Training setup:", "", *_table(["classifier", "arch", "lr (Adam)", "batch size", "max epochs",
                                               "epochs trained (mean)", "weights"], rows), "",
             f"Filter chain: `{filter_chain(run)}`.", ""]
    first = group.classifiers[0] if group.classifiers else None
    shares = [(g, stats.get((first, g, "realised_synthetic_share"))) for g in group.generations]
    shares = [(g, s) for g, s in shares if s is not None and s[2]]
    if shares:
        lines += ["Realised synthetic share of an epoch per generation (mean over seeds): "
                  + ", ".join(f"{g}: {s[0]:.3f}" for g, s in shares) + ".", ""]
    return lines


def _status(group: Group) -> str:
    if not group.unfinished:
        return "finished"
    return "; ".join(f"`{run.path.name}` unfinished: {run.progress}" for run in group.unfinished)


def _group_section(group: Group, stats: dict) -> list[str]:
    gens = group.generations
    lead = leading_reading(group.facts)
    lines = [f"## {group.dataset}: {group.name}", "",
             f"Seeds: {', '.join(map(str, group.seeds))} ({seed_phrase(len(group.runs))}). Run directories: "
             + ", ".join(f"`{r.path}`" for r in group.runs), ""]
    if group.facts is not None:
        facts = group.facts
        groups = (f"subgroup = {facts.subgroup_noun} ({facts.num_groups}: {', '.join(facts.group_names)})"
                  if facts.num_groups else "no known subgroups")
        lines += [f"Classes ({facts.num_classes}): {', '.join(facts.class_names)}; {groups}.", ""]
    if group.unfinished:
        lines += [f"Unfinished: {_status(group)}.", ""]
    if group.differing:
        lines += ["Differs from the other groups in: " + ", ".join(f"`{k}={v}`" for k, v in group.differing.items()),
                  ""]
    lines += _setup_lines(group, stats)
    reason = READING_REASONS.get(lead, "").format(what=group.subgroup_noun)
    lines += [f"Fairness reading for {group.dataset}: **{lead}** ({reading_title(lead)})"
              + (f": {reason}" if reason else "") + ". Its table comes first; the other two readings follow. Every "
              "reading gives MEO, DI and MD as bounded (1 = equal), and eqs. 2 and 3 as printed (ordered pairs over "
              "C(G,2): MEO eq. 2 = 1 - 2 (1 - MEO); DI eq. 3 is unbounded below: -inf where a zero rate meets a "
              "positive one, and a seed at -inf makes the mean -inf, shown as `-inf (k of n seeds)`).", ""]
    blocks = [(f"Fairness metrics, {reading} reading ({reading_title(reading)})", ["acc", *reading_metrics_of(reading)])
              for reading in reading_order(group.facts)]
    n_ranks = max((len(r.get("acc_rank") or []) for r in group.rows), default=0)
    for classifier in group.classifiers:
        lines += [f"### {classifier}", ""]
        chance = chance_note(group, classifier)
        if chance:
            lines += [f"**Warning**: {chance}.", ""]
        for index, (title, metrics) in enumerate(blocks):
            if index and not any(stats.get((classifier, g, m), (0, 0, 0))[2] for g in gens for m in metrics[1:]):
                continue  # no subgroups (Hard ImageNet): the first table's accuracy says it all
            lines += [f"{title}:", "", *_metric_table(stats, classifier, gens, metrics), ""]
        if n_ranks:
            rank_metrics = [*(f"acc_rank_{k}" for k in range(1, n_ranks + 1)), "acc_rank_mean"]
            table = _metric_table(stats, classifier, gens, rank_metrics)
            table[0] = "| generation | " + " | ".join(
                f"rank {k}{' (worst)' if k == 1 else ' (best)' if k == n_ranks else ''}"
                for k in range(1, n_ranks + 1)) + " | mean over subgroups | n |"
            lines += ["Ranked subgroup accuracy (eq. 5; within each class sorted ascending, averaged over classes):",
                      "", *table, ""]
        kinds = sorted({m.split(".", 1)[1] for (c, _, m) in stats if c == classifier and m.startswith("ablation_acc.")})
        if kinds:
            metrics = [*(f"ablation_acc.{k}" for k in kinds), *(f"ablation_drop.{k}" for k in kinds)]
            table = _metric_table(stats, classifier, gens, metrics)
            table[0] = "| generation | " + " | ".join(
                [*(f"acc ({k})" for k in kinds), *(f"drop ({k})" for k in kinds)]) + " | n |"
            lines += ["Object-mask ablations (accuracy under each ablation and drop from clean accuracy; a larger "
                      "drop = more reliance on the object):", "", *table, ""]
    return lines


def _fid_table(groups: list[Group], fids: dict[str, dict[int, Stat]]) -> list[str]:
    """Rows = (group, samples): the raw block (Table 1's FID) and, where recorded, the kept samples."""
    gens = sorted({g for f in fids.values() for g in f})
    if not gens:
        return [f"No FID values recorded (no run has a generator FID in {STATE_FILE} blocks or result rows).", ""]
    rows = []
    for g in groups:
        for samples, stats in (("raw block", fids[g.name]), ("kept", fid_by_generation(g, "fid_kept"))):
            if stats or samples == "raw block":
                rows.append([g.name, g.dataset, samples, fid_features_text(g.fid_extractors),
                             *(fmt_cell(stats.get(gen)) for gen in gens),
                             str(max((s[2] for s in stats.values()), default=0))])
    return [*_table(["group", "dataset", "samples", "features", *map(str, gens), "n"], rows), ""]


def summary_markdown(groups: list[Group], stats_by_group: dict[str, dict], fids: dict[str, dict[int, Stat]],
                     conjecture_section: str, figures: list[Path], overview: dict[str, str]) -> str:
    """The whole summary.md; ``figures`` are the written figure files, ``overview`` maps a group to its
    pooled-vs-per-class figure's file name."""
    n_runs = sum(len(g.runs) for g in groups)
    lines = ["# Results report", "",
             f"{n_runs} run(s) in {len(groups)} group(s). Runs whose configs differ only in `seed_everything` "
             "(and `loop.run_dir`) form a group. Every cell is mean ± sample standard deviation (ddof=1) over the "
             "group's seeds; no ± means a single seed. `n` is the number of seeds with a value (a cell with fewer "
             "says so).", "",
             *_table(["group", "dataset", "seeds", "generations", "classifiers", "status"],
                     [[g.name, g.dataset, f"{', '.join(map(str, g.seeds))} ({seed_phrase(len(g.runs))})",
                       f"{g.generations[0]}-{g.generations[-1]}", ", ".join(g.classifiers), _status(g)]
                      for g in groups]), ""]
    caveats = caveat_lines(groups, stats_by_group, [g for g in groups if fids.get(g.name)])
    if caveats:
        lines += ["## What this report can and cannot tell", "", *caveats, ""]
    for dataset in dict.fromkeys(g.dataset for g in groups):
        lines += [f"# Dataset: {dataset}", ""]
        for group in (g for g in groups if g.dataset == dataset):
            lines += _group_section(group, stats_by_group[group.name])
    lines += ["## Generator FID per generation (Table 1 layout)", "",
              "Rows = groups, columns = generations (the generation-1 generator is trained on the real data only). "
              "The `features` column says what the FID was computed on: only Inception-V3 features compare with the "
              "paper's Table 1.", "", *_fid_table(groups, fids)]
    lines += [conjecture_section, "## Figures", ""]
    overview_files = set(overview.values())
    for path in figures:
        note = " (the three fairness readings side by side: the figure to show)" if path.name in overview_files \
            else " (the groups of this dataset side by side: accuracy, MD, worst and best subgroup, u_t)" \
            if path.name.endswith("__comparison.png") else ""
        lines.append(f"- [{path.name}](figures/{path.name}){note}")
    if not any("__samples" in p.name for p in figures):
        lines.append(f"- no per-generation sample sheets ({SAMPLES_SHEETS}) found in the runs")
    lines.append("")
    return "\n".join(lines)
