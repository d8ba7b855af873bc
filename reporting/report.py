"""Turn finished run directories into the paper's tables and figures: ``report_main(run_dirs, out)``.

Runs whose resolved configs differ only in ``seed_everything`` (and ``loop.run_dir``) form one group; every number
in the report is a mean +- sample standard deviation (ddof=1) over the seeds of a group. Outputs, under ``out``:

    results.csv        every result row of every run (group and run_dir columns; lists/dicts JSON-encoded)
    aggregate.csv      group x classifier x generation x metric: mean, std (ddof=1), n
    summary.md         tables per dataset/group, FID (Table 1 layout), ablations, section-5 bias amplification
    conjecture.csv     A_t, bootstrap intervals, equation-(6) fits (reporting/conjecture.py)
    figures/*.png      metric curves (Figs. 3a/4a/5/6), ranked subgroup accuracy (3b/4b/7), FID, ablations (8),
                       per-generation sample sheets stacked top to bottom (10-12)
"""

from __future__ import annotations

import copy
import csv
import glob
import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from common.errors import ConfigError
from reporting.conjecture import analyse_group, conjecture_markdown, write_conjecture_csv

METRICS = ("acc", "meo", "di", "md")
CLASS_METRICS = ("meo_class", "di_class", "md_class")
METRIC_LABELS = {"acc": "accuracy", "meo": "MEO", "di": "DI", "md": "MD", "meo_class": "MEO (per class)",
                 "di_class": "DI (per class)", "md_class": "MD (per class)", "fid": "FID"}
PER_CLASS_DATASETS = ("cifar20",)  # subgroup i means a different fine class in every superclass
IGNORED_CONFIG_KEYS = (("seed_everything",), ("loop", "run_dir"))


# ============================================================================================ loading
@dataclass
class Run:
    path: Path
    config: dict
    rows: list[dict]
    blocks: dict[int, dict]
    seed: int

    @property
    def dataset(self) -> str:
        return str(self.rows[0].get("dataset"))


@dataclass
class Group:
    key: str
    runs: list[Run]
    name: str = ""
    differing: dict[str, str] = field(default_factory=dict)

    @property
    def dataset(self) -> str:
        return self.runs[0].dataset

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]

    @property
    def rows(self) -> list[dict]:
        return [row for run in self.runs for row in run.rows]

    @property
    def classifiers(self) -> list[str]:
        return list(dict.fromkeys(row["classifier"] for row in self.rows))

    @property
    def generations(self) -> list[int]:
        return sorted({int(row["generation"]) for row in self.rows})


def expand_run_dirs(patterns: Iterable[str]) -> list[Path]:
    """Expand globs (``runs/sweeps/x/*/seed_*``), keep order, drop duplicates; a pattern matching nothing errors."""
    paths: list[Path] = []
    seen: set[Path] = set()
    for pattern in patterns:
        pattern = str(pattern)
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        matches = [m for m in matches if Path(m).is_dir()] if glob.has_magic(pattern) else matches
        if not matches:
            raise ConfigError(f"run directory pattern {pattern!r} matches no directory: check the path "
                              "(quote it so the shell does not expand it, or run from the right folder)")
        for match in matches:
            resolved = Path(match).resolve()
            if resolved not in seen:
                seen.add(resolved)
                paths.append(Path(match))
    if not paths:
        raise ConfigError("no run directories given: pass one or more RUN_DIR (globs allowed)")
    return paths


def _run_hint(path: Path) -> str:
    if not path.is_dir():
        return "the folder does not exist"
    nested = sorted(p.parent for p in path.glob("**/results.jsonl"))
    if nested:
        example = nested[0].relative_to(path).parts
        pattern = str(path / Path(*["*"] * len(example))) if example else str(path)
        return (f"it holds {len(nested)} run directories below it: pass them instead, e.g. '{pattern}'")
    return "the run has not finished its first classifier stage yet, or this is not a run directory"


def load_run(path: Path) -> Run:
    """Read one run directory (results.jsonl, config.yaml, state.json blocks) with clear errors."""
    results_path, config_path = path / "results.jsonl", path / "config.yaml"
    if not results_path.is_file():
        raise ConfigError(f"run directory {path} has no results.jsonl ({_run_hint(path)})")
    if not config_path.is_file():
        raise ConfigError(f"run directory {path} has no config.yaml: it was not written by `cli.py fit`; "
                          "remove it from the report's run directories")
    rows = []
    for number, line in enumerate(results_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ConfigError(f"{results_path} line {number} is not valid JSON ({err}): the file is damaged; "
                              "re-run the same `cli.py fit` command to rewrite it from state.json") from err
    if not rows:
        raise ConfigError(f"{results_path} is empty: the run has no finished classifier yet; "
                          "wait for it or leave it out of the report")
    for number, row in enumerate(rows, start=1):
        missing = [k for k in ("generation", "classifier", "dataset") if k not in row]
        if missing:
            raise ConfigError(f"{results_path} row {number} lacks {missing}: not a result file of this tool")
    try:
        config = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{config_path} is not valid YAML ({err})") from err
    blocks: dict[int, dict] = {}
    state_path = path / "state.json"
    if state_path.is_file():
        state = json.loads(state_path.read_text())
        blocks = {int(g): dict(b or {}) for g, b in (state.get("blocks") or {}).items()}
    seeds = sorted({int(row["seed"]) for row in rows if row.get("seed") is not None})
    if len(seeds) > 1:
        raise ConfigError(f"{results_path} mixes seeds {seeds}: one run directory must hold one seed; "
                          "give every seed its own --loop.run_dir")
    seed = seeds[0] if seeds else int(config.get("seed_everything") or 0)
    datasets = {row["dataset"] for row in rows}
    if len(datasets) > 1:
        raise ConfigError(f"{results_path} mixes datasets {sorted(datasets)}: one run directory must hold one run")
    return Run(path=path, config=config, rows=rows, blocks=blocks, seed=seed)


def group_key(config: dict) -> str:
    """The config without the keys that only distinguish seeds of one experiment, as canonical JSON."""
    config = copy.deepcopy(config)
    for keys in IGNORED_CONFIG_KEYS:
        node = config
        for k in keys[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(keys[-1], None)
    return json.dumps(config, sort_keys=True, default=str)


def _flatten(value, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for k, v in value.items():
            flat.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return flat
    return {prefix: json.dumps(value, sort_keys=True, default=str)}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_") or "group"


def _base_name(group: Group) -> str:
    """The folder above ``seed_<n>`` when all runs share it (sweeps and default run dirs name it after the
    config and its overrides), else the dataset."""
    parents = {run.path.resolve().parent.name for run in group.runs}
    if len(parents) == 1 and all(re.fullmatch(r"seed_?\d+", run.path.resolve().name) for run in group.runs):
        return parents.pop()
    return group.dataset


def name_groups(groups: list[Group]) -> None:
    """Short readable, unique names: the shared folder name (config stem + overrides), plus differing keys."""
    flats = [_flatten(json.loads(g.key)) for g in groups]
    keys = sorted(set().union(*flats)) if flats else []
    differing = [k for k in keys if len({f.get(k, "<unset>") for f in flats}) > 1]
    for group, flat in zip(groups, flats):
        group.differing = {k: flat.get(k, "<unset>") for k in differing}
        group.name = _base_name(group)
    names = [g.name for g in groups]
    for group in groups:
        if names.count(group.name) > 1:
            detail = ",".join(f"{k.split('.')[-1]}={v.strip(chr(34))}" for k, v in group.differing.items()
                              if len(v) <= 40)
            group.name = f"{group.name}[{detail}]" if detail else group.name
    for group in groups:  # names become file names: keep them short, the summary lists the differing keys
        if len(group.name) > 80:
            digest = hashlib.sha1(group.key.encode()).hexdigest()[:6]
            group.name = f"{_base_name(group)[:60]}-{digest}"
    seen: dict[str, int] = {}
    for group in groups:
        if group.name in seen:
            seen[group.name] += 1
            group.name = f"{group.name}#{seen[group.name]}"
        else:
            seen[group.name] = 1


def group_runs(runs: list[Run]) -> list[Group]:
    """Group runs that differ only in seed; refuse groups that would average incomparable numbers."""
    groups: dict[str, Group] = {}
    for run in runs:
        key = group_key(run.config)
        groups.setdefault(key, Group(key=key, runs=[])).runs.append(run)
    for group in groups.values():
        group.runs.sort(key=lambda r: r.seed)
        datasets = {run.dataset for run in group.runs}
        if len(datasets) > 1:
            listing = ", ".join(f"{run.path} ({run.dataset})" for run in group.runs)
            raise ConfigError(f"runs with identical configs report different datasets ({listing}): their numbers "
                              "are not comparable; report them separately")
        by_seed: dict[int, Path] = {}
        for run in group.runs:
            if run.seed in by_seed:
                raise ConfigError(f"{by_seed[run.seed]} and {run.path} are the same experiment with the same seed "
                                  f"{run.seed}: averaging them would double-count it; pass only one of them")
            by_seed[run.seed] = run.path
        sizes = {len(row.get("acc_rank") or []) for row in group.rows}
        if len(sizes) > 1:
            raise ConfigError(f"runs of one group report different numbers of subgroups {sorted(sizes)} "
                              f"({', '.join(str(r.path) for r in group.runs)}): they are not comparable")
    result = sorted(groups.values(), key=lambda g: (g.dataset, str(g.runs[0].path)))
    name_groups(result)
    return result


# ============================================================================================ statistics
def mean_std(values: Iterable[float | None]) -> tuple[float, float, int]:
    """(mean, sample std with ddof=1, n) over the finite values; std is NaN for n < 2, mean NaN for n = 0."""
    kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not kept:
        return math.nan, math.nan, 0
    std = float(np.std(kept, ddof=1)) if len(kept) > 1 else math.nan
    return float(np.mean(kept)), std, len(kept)


def row_metrics(row: dict) -> dict[str, float | None]:
    """Every scalar the report aggregates from one result row (ranked accuracies and ablations flattened)."""
    values: dict[str, float | None] = {k: row.get(k) for k in (*METRICS, *CLASS_METRICS)}
    for k, v in enumerate(row.get("acc_rank") or [], start=1):
        values[f"acc_rank_{k}"] = v
    for prefix in ("ablation_acc", "ablation_drop"):
        for kind, v in (row.get(prefix) or {}).items():
            values[f"{prefix}.{kind}"] = v
    for k in ("quality_q", "quality_q_kept", "imbalance_u", "imbalance_u_kept", "majority_gain", "majority_gain_kept",
              "synthetic_share", "synthetic_reuse", "filter_kept", "filter_dropped"):
        if row.get(k) is not None:
            values[k] = row[k]
    return values


def aggregate(group: Group) -> dict[tuple[str, int, str], tuple[float, float, int]]:
    """(classifier, generation, metric) -> (mean, std ddof=1, n seeds)."""
    cells: dict[tuple[str, int, str], list] = {}
    for row in group.rows:
        for metric, value in row_metrics(row).items():
            cells.setdefault((row["classifier"], int(row["generation"]), metric), []).append(value)
    return {key: mean_std(values) for key, values in cells.items()}


def fid_by_generation(group: Group, key: str = "fid") -> dict[int, tuple[float, float, int]]:
    """Generator FID per generation (``fid``: the raw block, Table 1's; ``fid_kept``: the samples the filters kept):
    state.json blocks first, else the generation's result rows."""
    per_gen: dict[int, list[float]] = {}
    for run in group.runs:
        gens = set(run.blocks) | {int(r["generation"]) for r in run.rows}
        for g in sorted(gens):
            value = (run.blocks.get(g) or {}).get(key)
            if value is None:
                value = next((r[key] for r in run.rows if int(r["generation"]) == g and r.get(key) is not None),
                             None)
            if value is not None:
                per_gen.setdefault(g, []).append(value)
    return {g: mean_std(v) for g, v in sorted(per_gen.items())}


# ============================================================================================ formatting
def fmt_cell(stat: tuple[float, float, int] | None, row_n: int | None = None, digits: int = 4) -> str:
    if stat is None or stat[2] == 0:
        return "-"
    mean, std, n = stat
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
        rows.append([str(g), *(fmt_cell(c, n) for c in cells), str(n)])
    return _table(["generation", *(METRIC_LABELS.get(m, m) for m in metrics), "n"], rows)


def _group_section(group: Group, stats: dict) -> list[str]:
    gens = group.generations
    per_class_first = group.dataset in PER_CLASS_DATASETS
    lines = [f"## {group.dataset}: {group.name}", "",
             f"Seeds: {', '.join(map(str, group.seeds))} ({len(group.runs)} runs). Run directories: "
             + ", ".join(f"`{r.path}`" for r in group.runs), ""]
    if group.differing:
        lines += ["Differs from the other groups in: " + ", ".join(f"`{k}={v}`" for k, v in group.differing.items()),
                  ""]
    if per_class_first:
        lines += ["For CIFAR-20/100 the per-class metrics are the meaningful ones: \"subgroup i\" is a different fine "
                  "class in every superclass, so MEO/DI/MD pooled over classes compare unrelated subgroups. The "
                  "per-class tables come first; the pooled ones are shown for completeness.", ""]
    blocks = [("Per-class fairness metrics (computed within each class over its subgroups, averaged over classes)",
               ["acc", *CLASS_METRICS]),
              ("Accuracy and fairness metrics (subgroups pooled over classes)", list(METRICS))]
    if not per_class_first:
        blocks.reverse()
    n_ranks = max((len(r.get("acc_rank") or []) for r in group.rows), default=0)
    for classifier in group.classifiers:
        lines += [f"### {classifier}", ""]
        for title, metrics in blocks:
            if title.startswith("Per-class") and not any(
                    stats.get((classifier, g, m), (0, 0, 0))[2] for g in gens for m in CLASS_METRICS):
                continue  # no subgroups (Hard ImageNet): the accuracy table says it all
            lines += [f"{title}:", "", *_metric_table(stats, classifier, gens, metrics), ""]
        if n_ranks:
            rank_metrics = [f"acc_rank_{k}" for k in range(1, n_ranks + 1)]
            table = _metric_table(stats, classifier, gens, rank_metrics)
            table[0] = "| generation | " + " | ".join(
                f"rank {k}{' (worst)' if k == 1 else ' (best)' if k == n_ranks else ''}"
                for k in range(1, n_ranks + 1)) + " | n |"
            lines += ["Ranked subgroup accuracy (eq. 5; within each class sorted ascending, averaged over classes):",
                      "", *table, ""]
        kinds = sorted({m.split(".", 1)[1] for (c, _, m) in stats if c == classifier and m.startswith("ablation_acc.")})
        if kinds:
            metrics = [*(f"ablation_acc.{k}" for k in kinds), *(f"ablation_drop.{k}" for k in kinds)]
            table = _metric_table(stats, classifier, gens, metrics)
            table[0] = "| generation | " + " | ".join(
                [*(f"acc ({k})" for k in kinds), *(f"drop ({k})" for k in kinds)]) + " | n |"
            lines += ["Hard ImageNet ablations (accuracy under each ablation and drop from clean accuracy; a larger "
                      "drop = more reliance on the object):", "", *table, ""]
    return lines


def _fid_table(groups: list[Group], fids: dict[str, dict]) -> list[str]:
    """Rows = (group, samples): the raw block (Table 1's FID) and, where recorded, the kept samples."""
    gens = sorted({g for f in fids.values() for g in f})
    if not gens:
        return ["No FID values recorded (no run has a generator FID in state.json blocks or result rows).", ""]
    rows = []
    for g in groups:
        kept = fid_by_generation(g, "fid_kept")
        for samples, stats in (("raw block", fids[g.name]), ("kept", kept)):
            if stats or samples == "raw block":
                rows.append([g.name, g.dataset, samples, *(fmt_cell(stats.get(gen)) for gen in gens),
                             str(max((s[2] for s in stats.values()), default=0))])
    return [*_table(["group", "dataset", "samples", *map(str, gens), "n"], rows), ""]


# ============================================================================================ figures
def _figure(n_panels: int, width: float = 4.0, height: float = 3.2):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(n_panels, 4)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    FigureCanvasAgg(fig)  # Agg canvas without pyplot: no global backend state, works headless
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _curve(ax, stats: dict, classifier: str, metric: str, gens: list[int], label: str) -> bool:
    points = [(g, stats[(classifier, g, metric)]) for g in gens if (classifier, g, metric) in stats]
    points = [(g, s) for g, s in points if s[2] > 0]
    if not points:
        return False
    x = np.array([g for g, _ in points])
    mean = np.array([s[0] for _, s in points])
    std = np.nan_to_num(np.array([s[1] for _, s in points]))
    line, = ax.plot(x, mean, marker="o", markersize=3, label=label)
    ax.fill_between(x, mean - std, mean + std, alpha=0.2, color=line.get_color())
    return True


def _finish_axes(ax, title: str, gens: list[int]) -> None:
    ax.set_title(title)
    ax.set_xlabel("generation")
    ax.set_xticks(gens)
    ax.grid(alpha=0.3)


def _save(fig, path: Path, written: list[Path]) -> None:
    fig.savefig(path, dpi=110)
    written.append(path)


def plot_metrics(group: Group, stats: dict, metrics: list[str], path: Path, written: list[Path]) -> None:
    """One panel per metric, one line per classifier, shaded +- std over seeds (Figs. 3a/4a/5/6)."""
    fig, axes = _figure(len(metrics))
    for ax, metric in zip(axes, metrics):
        for classifier in group.classifiers:
            _curve(ax, stats, classifier, metric, group.generations, classifier)
        _finish_axes(ax, METRIC_LABELS.get(metric, metric), group.generations)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{group.name} (mean ± std over {len(group.runs)} seeds)")
    _save(fig, path, written)


def plot_ranked(group: Group, stats: dict, n_ranks: int, path: Path, written: list[Path]) -> None:
    """One panel per classifier, one line per subgroup rank (Figs. 3b/4b/7)."""
    fig, axes = _figure(len(group.classifiers))
    for ax, classifier in zip(axes, group.classifiers):
        for k in range(1, n_ranks + 1):
            label = f"rank {k}" + (" (worst)" if k == 1 else " (best)" if k == n_ranks else "")
            _curve(ax, stats, classifier, f"acc_rank_{k}", group.generations, label)
        _finish_axes(ax, f"{classifier}: ranked subgroup accuracy", group.generations)
        ax.legend(fontsize=7)
    fig.suptitle(f"{group.name} (mean ± std over {len(group.runs)} seeds)")
    _save(fig, path, written)


def plot_ablation(group: Group, stats: dict, kinds: list[str], path: Path, written: list[Path]) -> None:
    """One panel per ablation kind (plus clean accuracy), one line per classifier (Fig. 8)."""
    metrics = ["acc", *(f"ablation_acc.{k}" for k in kinds)]
    fig, axes = _figure(len(metrics))
    for ax, metric in zip(axes, metrics):
        for classifier in group.classifiers:
            _curve(ax, stats, classifier, metric, group.generations, classifier)
        _finish_axes(ax, "clean accuracy" if metric == "acc" else f"accuracy, {metric.split('.', 1)[1]}",
                     group.generations)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{group.name}: Hard ImageNet ablations")
    _save(fig, path, written)


def plot_fid(groups: list[Group], fids: dict[str, dict], path: Path, written: list[Path]) -> None:
    fig, axes = _figure(1, width=6.0, height=4.0)
    ax = axes[0]
    gens: set[int] = set()
    for group in groups:
        for samples, per_gen in (("raw block", fids[group.name]), ("kept", fid_by_generation(group, "fid_kept"))):
            stats = {("fid", g, "fid"): s for g, s in per_gen.items()}
            gens |= set(per_gen)
            _curve(ax, stats, "fid", "fid", sorted(per_gen), f"{group.name} ({samples})")
    _finish_axes(ax, "generator FID, raw block and kept samples (mean ± std over seeds)", sorted(gens))
    ax.legend(fontsize=7)
    _save(fig, path, written)


def stack_sample_sheets(run: Run, path: Path, written: list[Path]) -> bool:
    """The run's gen_XX/samples.png sheets stacked top to bottom, labelled by generation (Figs. 10-12)."""
    from PIL import Image, ImageDraw

    sheets = sorted(run.path.glob("gen_*/samples.png"))
    if not sheets:
        return False
    images = [Image.open(p).convert("RGB") for p in sheets]
    label_width, gap = 70, 4
    width = label_width + max(im.width for im in images)
    height = sum(im.height for im in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for sheet, image in zip(sheets, images):
        canvas.paste(image, (label_width, y))
        draw.text((6, y + image.height // 2 - 6), f"gen {int(sheet.parent.name.split('_')[1])}", fill="black")
        y += image.height + gap
    canvas.save(path)
    written.append(path)
    return True


# ============================================================================================ outputs
def write_results_csv(groups: list[Group], path: Path) -> None:
    columns: dict[str, None] = {"group": None, "run_dir": None}
    for group in groups:
        for row in group.rows:
            columns.update(dict.fromkeys(row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        for group in groups:
            for run in group.runs:
                for row in run.rows:
                    cells = {k: json.dumps(v) if isinstance(v, (list, dict)) else ("" if v is None else v)
                             for k, v in row.items()}
                    writer.writerow({**cells, "group": group.name, "run_dir": str(run.path)})


def write_aggregate_csv(groups: list[Group], stats_by_group: dict[str, dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["group", "dataset", "classifier", "generation", "metric", "mean", "std_ddof1", "n"])
        for group in groups:
            for (classifier, g, metric), (mean, std, n) in sorted(stats_by_group[group.name].items(),
                                                                   key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
                writer.writerow([group.name, group.dataset, classifier, g, metric,
                                 "" if not math.isfinite(mean) else repr(mean),
                                 "" if not math.isfinite(std) else repr(std), n])


def report_main(run_dirs: list[str], out: str) -> None:
    """Read the run directories (globs allowed), group seeds, and write the report into ``out``."""
    paths = expand_run_dirs(run_dirs)
    runs = [load_run(p) for p in paths]  # every error surfaces before anything is written
    groups = group_runs(runs)
    out_dir = Path(out)
    figures = out_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    stats_by_group = {g.name: aggregate(g) for g in groups}
    fids = {g.name: fid_by_generation(g) for g in groups}
    conjecture = [c for g in groups for c in analyse_group(
        g.name, g.dataset, g.rows, {run.seed: run.blocks for run in g.runs})]

    write_results_csv(groups, out_dir / "results.csv")
    write_aggregate_csv(groups, stats_by_group, out_dir / "aggregate.csv")
    write_conjecture_csv(conjecture, out_dir / "conjecture.csv")
    written += [out_dir / "results.csv", out_dir / "aggregate.csv", out_dir / "conjecture.csv"]

    for group in groups:
        stats, stem = stats_by_group[group.name], _slug(group.name)
        per_class_first = group.dataset in PER_CLASS_DATASETS
        metric_sets = [("metrics_per_class", ["acc", *CLASS_METRICS]), ("metrics", list(METRICS))]
        for suffix, metrics in metric_sets if per_class_first else metric_sets[::-1]:
            present = [m for m in metrics if any(k[2] == m and v[2] for k, v in stats.items())]
            if [m for m in present if m != "acc"] or (present and suffix == "metrics"):
                plot_metrics(group, stats, present, figures / f"{stem}__{suffix}.png", written)
        n_ranks = max((len(r.get("acc_rank") or []) for r in group.rows), default=0)
        if n_ranks:
            plot_ranked(group, stats, n_ranks, figures / f"{stem}__ranked_subgroups.png", written)
        kinds = sorted({m.split(".", 1)[1] for (_, _, m) in stats if m.startswith("ablation_acc.")})
        if kinds:
            plot_ablation(group, stats, kinds, figures / f"{stem}__ablation.png", written)
        stack_sample_sheets(group.runs[0], figures / f"{stem}__samples_seed{group.runs[0].seed}.png", written)
    if any(fids.values()):
        plot_fid(groups, fids, figures / "fid.png", written)

    lines = ["# Results report", "",
             f"{len(runs)} run(s) in {len(groups)} group(s). Runs whose configs differ only in `seed_everything` "
             "(and `loop.run_dir`) form a group. Every cell is mean ± sample standard deviation (ddof=1) over the "
             "group's seeds; no ± means a single seed. `n` is the number of seeds with a value (a cell with fewer "
             "says so).", "",
             *_table(["group", "dataset", "seeds", "generations", "classifiers"],
                     [[g.name, g.dataset, ", ".join(map(str, g.seeds)), f"{g.generations[0]}-{g.generations[-1]}",
                       ", ".join(g.classifiers)] for g in groups]), ""]
    for dataset in dict.fromkeys(g.dataset for g in groups):
        lines += [f"# Dataset: {dataset}", ""]
        for group in (g for g in groups if g.dataset == dataset):
            lines += _group_section(group, stats_by_group[group.name])
    lines += ["## Generator FID per generation (Table 1 layout)", "",
              "Rows = groups, columns = generations (the generation-1 generator is trained on the real data only).", "",
              *_fid_table(groups, fids)]
    lines += [conjecture_markdown(conjecture), "## Figures", ""]
    lines += [f"- [{p.name}](figures/{p.name})" for p in written if p.parent == figures]
    if not any(p.name.count("__samples") for p in written):
        lines.append("- no per-generation sample sheets (gen_XX/samples.png) found in the runs")
    lines.append("")
    (out_dir / "summary.md").write_text("\n".join(lines))
    written.append(out_dir / "summary.md")
    print(f"[genbias] report of {len(runs)} run(s) in {len(groups)} group(s) written to {out_dir}:", flush=True)
    for p in written:
        print(f"  {p}", flush=True)
