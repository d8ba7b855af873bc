"""The report's figures (matplotlib's Agg canvas, no pyplot state): metric curves across generations, ranked
subgroup accuracy, ablations, FID, the pooled-next-to-per-class overview, and the stacked sample sheets.

Every figure says how many seeds it averages (a band of ± one std over seeds; none for one seed), every axis is
labelled, and the FID figure names its feature extractor.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from common.image_grids import readable_font
from reporting.caveats import OVERVIEW_SUFFIX, fid_features_text, seed_phrase
from reporting.readings import leading_reading, reading_title
from reporting.runs import Group, Run
from reporting.statistics import Stat, fid_by_generation
from simulation.results import CELLS_METRICS, CLASS_METRICS, FAIRNESS_METRICS, METRIC_LABELS, READING_METRICS
from simulation.run_directory import RunDirectory

Y_LABELS = {"acc": "accuracy", "meo": "MEO (1 = equal subgroup TPRs)", "di": "DI (1 = no disparity)",
            "md": "MD (max - min subgroup TPR)", "meo_class": "MEO per class (1 = equal)",
            "di_class": "DI per class (1 = no disparity)", "md_class": "MD per class (max - min)",
            "meo_cells": "MEO over cells (1 = equal)", "di_cells": "DI over cells (1 = no disparity)",
            "md_cells": "MD over cells (max - min cell accuracy)", "meo_eq2": "MEO eq. 2 as printed (1 = equal)",
            "di_eq3": "DI eq. 3 as printed (unbounded below)"}
#: the overview's panels: (title, y label, [(metric, meaning, line style), ...])
OVERVIEW_PANELS = [
    ("accuracy", "accuracy", [("acc", "overall", "-"), ("acc_rank_1", "worst subgroup", "--")]),
    *((METRIC_LABELS[pooled], Y_LABELS[pooled],
       [(pooled, "pooled", "-"), (per_class, "per class", "--"), (cells, "cells", ":")])
      for pooled, per_class, cells in zip(FAIRNESS_METRICS[1:], CLASS_METRICS, CELLS_METRICS)),
]
LINE_STYLE_NAMES = {"-": "solid", "--": "dashed", ":": "dotted"}
SHEET_LABEL_FONT_SIZE = 18
#: at most this many panels a row: a figure stays readable at the README's width (one row of 5 was 6:1)
MAX_COLS = 3
#: inches under the panels for the figure's legend (``legend_below``)
LEGEND_HEIGHT = 0.7

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(n_panels: int, width: float = 4.0, height: float = 3.2, max_cols: int = MAX_COLS):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(n_panels, max_cols, MAX_COLS)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(width * cols, height * rows + LEGEND_HEIGHT), layout="constrained")
    FigureCanvasAgg(fig)  # Agg canvas without pyplot: no global backend state, works headless
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _curve(ax, stats: dict, classifier: str, metric: str, gens: list[int], label: str, **style) -> bool:
    points = [(g, stats[(classifier, g, metric)]) for g in gens if (classifier, g, metric) in stats]
    points = [(g, s) for g, s in points if s[2] > 0]
    if not points:
        return False
    x = np.array([g for g, _ in points])
    mean = np.array([s[0] for _, s in points])
    std = np.nan_to_num(np.array([s[1] for _, s in points]))
    line, = ax.plot(x, mean, marker="o", markersize=3, label=label, **style)
    ax.fill_between(x, mean - std, mean + std, alpha=0.2, color=line.get_color())
    return True


def _finish_axes(ax, title: str, ylabel: str, gens: list[int]) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("generation")
    ax.set_ylabel(ylabel)
    ax.set_xticks(gens)
    ax.grid(alpha=0.3)


def legend_below(fig, axes, fontsize: float = 8, max_cols: int = 3) -> None:
    """One legend for the whole figure, under its panels (constrained layout keeps it off every axes): each label
    once, in the order the panels drew them."""
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        # as many columns as fit the figure's width at this font (a character is about 0.6 em, a handle 4 em)
        longest = max(len(label) for label in handles)
        fitting = int(fig.get_figwidth() * 72 // ((0.6 * longest + 4) * fontsize))
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", fontsize=fontsize,
                   ncols=max(1, min(len(handles), max_cols, fitting)), frameon=False)


def short_labels(groups: list[Group]) -> dict[str, str]:
    """Each group's label in a comparison: the fewest settings that tell these groups apart (``stack_policy=fifo``;
    a setting with more distinct values first), the group's name where none does."""
    def value(group: Group, key: str) -> str:
        return group.differing.get(key, "<unset>").strip('"')

    def told_apart(keys: list[str]) -> int:
        return len({tuple(value(g, k) for k in keys) for g in groups})

    keys = sorted({k for g in groups for k in g.differing}, key=lambda k: (-told_apart([k]), k))
    chosen: list[str] = []
    for key in keys:
        if told_apart(chosen) == len(groups):
            break
        if told_apart([*chosen, key]) > told_apart(chosen):
            chosen.append(key)
    labels = {g.name: ", ".join(f"{k.split('.')[-1]}={value(g, k)}" for k in chosen) for g in groups}
    if not chosen or len(set(labels.values())) < len(groups):
        return {g.name: g.name for g in groups}
    return labels


def _suptitle(fig, group: Group, what: str = "") -> None:
    n = len(group.runs)
    spread = f"mean ± std over {seed_phrase(n)}" if n > 1 else "1 seed (no spread: run 3 seeds before reading trends)"
    unfinished = f"; {len(group.unfinished)} of {n} runs unfinished" if group.unfinished else ""
    fig.suptitle(f"{group.name}{what}: {spread}{unfinished}")


def _save(fig, path: Path, written: list[Path]) -> None:
    fig.savefig(path, dpi=110)
    written.append(path)


def plot_metrics(group: Group, stats: dict, metrics: list[str], path: Path, written: list[Path],
                 reading: str | None = None) -> Figure:
    """One panel per metric, one line per classifier, shaded +- std over seeds (Figs. 3a/4a/5/6); the title names
    the fairness ``reading`` the metrics belong to."""
    fig, axes = _figure(len(metrics))
    for ax, metric in zip(axes, metrics):
        for classifier in group.classifiers:
            _curve(ax, stats, classifier, metric, group.generations, classifier)
        _finish_axes(ax, METRIC_LABELS.get(metric, metric), Y_LABELS.get(metric, metric), group.generations)
    legend_below(fig, axes)
    _suptitle(fig, group, f", fairness reading {reading} ({reading_title(reading)})" if reading else "")
    _save(fig, path, written)
    return fig


def plot_overview(group: Group, stats: dict, path: Path, written: list[Path]) -> Figure | None:
    """The three fairness readings in one panel per measure, pooled (solid), per class (dashed) and over cells
    (dotted), and accuracy next to worst-subgroup accuracy, one colour per classifier: where the readings disagree,
    a figure of one alone would tell part of the story."""
    def recorded(metric: str) -> bool:
        return any(k[2] == metric and v[2] for k, v in stats.items())

    panels = [p for p in OVERVIEW_PANELS if any(recorded(m) for m, _, _ in p[2])]
    if not any(recorded(m) for p in panels for m, _, _ in p[2][1:]):
        return None  # nothing per class or per subgroup (Hard ImageNet): the metrics figure says it all
    fig, axes = _figure(len(panels), width=5.0, height=3.4, max_cols=2)  # 2 x 2: readable at README width
    colors = [f"C{k}" for k in range(len(group.classifiers))]
    for ax, (title, ylabel, lines) in zip(axes, panels):
        drawn = [(m, text, style) for m, text, style in lines if recorded(m)]
        for classifier, color in zip(group.classifiers, colors):
            for metric, text, style in drawn:
                _curve(ax, stats, classifier, metric, group.generations, f"{classifier}, {text}", color=color,
                       linestyle=style)
        _finish_axes(ax, f"{title}: " + ", ".join(f"{text} ({LINE_STYLE_NAMES[style]})" for _, text, style in drawn),
                     ylabel, group.generations)
    legend_below(fig, axes)
    _suptitle(fig, group, f", fairness readings (this dataset leads with {leading_reading(group.facts)})")
    _save(fig, path, written)
    return fig


def overview_name(group: Group) -> str:
    return f"{group.stem}__{OVERVIEW_SUFFIX}.png"


def plot_ranked(group: Group, stats: dict, n_ranks: int, path: Path, written: list[Path]) -> Figure:
    """One panel per classifier, one line per subgroup rank and the mean over subgroups (dashed): worst, best and
    mean subgroup accuracy per generation (Figs. 3b/4b/7)."""
    fig, axes = _figure(len(group.classifiers))
    for ax, classifier in zip(axes, group.classifiers):
        for k in range(1, n_ranks + 1):
            label = f"rank {k}" + (" (worst)" if k == 1 else " (best)" if k == n_ranks else "")
            _curve(ax, stats, classifier, f"acc_rank_{k}", group.generations, label)
        _curve(ax, stats, classifier, "acc_rank_mean", group.generations, "mean over subgroups", color="black",
               linestyle="--")
        _finish_axes(ax, f"{classifier}: ranked subgroup accuracy", "subgroup accuracy (mean over classes)",
                     group.generations)
    legend_below(fig, axes, max_cols=4)
    _suptitle(fig, group)
    _save(fig, path, written)
    return fig


def plot_ablation(group: Group, stats: dict, kinds: list[str], path: Path, written: list[Path]) -> Figure:
    """One panel per ablation kind (plus clean accuracy), one line per classifier (Fig. 8)."""
    metrics = ["acc", *(f"ablation_acc.{k}" for k in kinds)]
    fig, axes = _figure(len(metrics))
    for ax, metric in zip(axes, metrics):
        for classifier in group.classifiers:
            _curve(ax, stats, classifier, metric, group.generations, classifier)
        _finish_axes(ax, "clean accuracy" if metric == "acc" else f"accuracy, {metric.split('.', 1)[1]}",
                     "accuracy", group.generations)
    legend_below(fig, axes)
    _suptitle(fig, group, ", Hard ImageNet ablations")
    _save(fig, path, written)
    return fig


def plot_fid(groups: list[Group], fids: dict[str, dict[int, Stat]], path: Path, written: list[Path]) -> Figure:
    """Generator FID per generation, one line per group; the title names the features it was computed on."""
    fig, axes = _figure(1, width=7.0, height=4.2)
    ax = axes[0]
    gens: set[int] = set()
    shown = [g for g in groups if fids[g.name]]
    features = {fid_features_text(g.fid_extractors) for g in shown}
    for group in shown:
        label = f"{group.name} ({seed_phrase(len(group.runs))})"
        if len(features) > 1:
            label += f": {fid_features_text(group.fid_extractors)}"
        for samples, per_gen in (("raw block", fids[group.name]), ("kept", fid_by_generation(group, "fid_kept"))):
            stats = {("fid", g, "fid"): s for g, s in per_gen.items()}
            gens |= set(per_gen)
            _curve(ax, stats, "fid", "fid", sorted(per_gen), f"{label}, {samples}")
    title = "generator FID, raw block and kept samples (mean ± std over seeds)"
    if len(features) == 1:
        title += "\nfeatures: " + features.pop()
    _finish_axes(ax, title, "FID (lower = closer to the real training images)", sorted(gens))
    legend_below(fig, axes, fontsize=7, max_cols=2)
    _save(fig, path, written)
    return fig


#: the comparison figure's panels: what a data regime or a mitigation changes (accuracy, the subgroup gap, the
#: worst and best subgroup, and the block's subgroup imbalance u_t)
COMPARISON_METRICS = [("acc", "accuracy"), ("md", "MD ({reading})"), ("acc_rank_1", "worst-subgroup accuracy"),
                      ("acc_rank_best", "best-subgroup accuracy"), ("imbalance_u", "u_t (block subgroup imbalance)")]


def comparison_name(dataset: str) -> str:
    return f"{dataset}__comparison.png"


def plot_comparison(groups: list[Group], stats_by_group: dict[str, dict], path: Path, written: list[Path]) -> Figure:
    """Groups of one dataset side by side (data regimes, with vs without a mitigation): for each classifier a panel
    per metric of ``COMPARISON_METRICS`` the runs recorded (at most ``MAX_COLS`` a row), one line per group, labelled
    by the settings that tell the groups apart."""
    classifiers = list(dict.fromkeys(c for g in groups for c in g.classifiers))
    gens = sorted({gen for g in groups for gen in g.generations})

    lead = leading_reading(groups[0].facts)

    def resolved(group: Group, metric: str) -> str:
        n_ranks = max((len(r.get("acc_rank") or []) for r in group.rows), default=0)
        if metric == "md":  # the spread in the dataset's leading fairness reading
            return READING_METRICS[lead][2]
        return f"acc_rank_{n_ranks}" if metric == "acc_rank_best" else metric

    metrics = [(m, title.format(reading=lead)) for m, title in COMPARISON_METRICS
               if any(k[2] == resolved(g, m) and v[2] for g in groups for k, v in stats_by_group[g.name].items())]
    labels = short_labels(groups)
    fig, axes = _figure(len(classifiers) * len(metrics), width=3.8, height=3.0)
    for row, classifier in enumerate(classifiers):
        for col, (metric, title) in enumerate(metrics):
            ax = axes[row * len(metrics) + col]
            for group in groups:
                _curve(ax, stats_by_group[group.name], classifier, resolved(group, metric), group.generations,
                       f"{labels[group.name]} ({seed_phrase(len(group.runs))})")
            ylabel = Y_LABELS.get(resolved(groups[0], metric), title)
            _finish_axes(ax, f"{classifier}: {title}" if metric != "imbalance_u" else title, ylabel, gens)
    legend_below(fig, axes, max_cols=4)
    dataset = groups[0].dataset
    fig.suptitle(f"{dataset}: {len(groups)} groups compared (mean ± std over each group's seeds)")
    _save(fig, path, written)
    return fig


def stack_sample_sheets(run: Run, path: Path, written: list[Path]) -> bool:
    """The run's gen_XX/samples.png sheets stacked top to bottom, each under a "generation N" header (Figs. 10-12);
    the sheets label their rows with the class names themselves."""
    from PIL import Image, ImageDraw

    sheets = RunDirectory(run.path).sample_sheets()
    if not sheets:
        return False
    images = [Image.open(p).convert("RGB") for _, p in sheets]
    font = readable_font(SHEET_LABEL_FONT_SIZE)
    header, gap = SHEET_LABEL_FONT_SIZE + 10, 6
    width = max(max(im.width for im in images), 240)
    height = sum(header + im.height for im in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for (generation, _), image in zip(sheets, images):
        draw.text((4, y + header // 2), f"generation {generation}", fill="black", font=font, anchor="lm")
        canvas.paste(image, (0, y + header))
        y += header + image.height + gap
    canvas.save(path)
    written.append(path)
    return True
