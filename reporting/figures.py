"""The report's figures (matplotlib's Agg canvas, no pyplot state): metric curves across generations, ranked
subgroup accuracy, ablations, FID, the pooled-next-to-per-class overview, and the stacked sample sheets.

Every figure says how many seeds it averages (a band of ± one std over seeds; none for one seed), every axis is
labelled, and the FID figure names its feature extractor. Paper-ready: PNG at ``PNG_DPI`` and, on request, PDF and SVG
(vector); measures with a fixed range are drawn on it (``y_limits``: a change of 0.0004 in MEO stays small), others
span at least ``MIN_SPAN_FRACTION`` of their magnitude; tick labels never carry an offset (``1e-8+5.11409e-2``);
generations are integer ticks; a panel without data says "n/a" and why instead of staying empty.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from common.errors import ConfigError
from common.image_grids import readable_font
from records.results import FAIRNESS, UNIT_RANGE, fairness_families, metric_names, y_label
from records.results import label as metric_label
from records.results import metric as metric_entry
from reporting.caveats import OVERVIEW_SUFFIX, fid_features_text, seed_phrase
from reporting.readings import leading_reading, reading_title
from reporting.runs import Group, Run
from reporting.statistics import Stat, fid_by_generation


def overview_panels() -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    """The overview's panels: (title, y label, [(metric, meaning, line style), ...]): accuracy next to the worst
    subgroup's, then each bounded fairness measure pooled, per class and over cells (the metric table's families)."""
    return [("accuracy", "accuracy", [("acc", "overall", "-"), ("acc_rank_1", "worst subgroup", "--")]),
            *((metric_label(pooled), y_label(pooled), [(pooled, "pooled", "-"), (per_class, "per class", "--"),
                                                (cells, "cells", ":")])
              for pooled, per_class, cells in fairness_families())]


LINE_STYLE_NAMES = {"-": "solid", "--": "dashed", ":": "dotted"}
SHEET_LABEL_FONT_SIZE = 18
#: at most this many panels a row: a figure stays readable at a page's width (one row of 5 was 6:1)
MAX_COLS = 3
#: inches under the panels for the figure's legend (``legend_below``)
LEGEND_HEIGHT = 0.7
#: what ``cli.py report --formats`` may ask for: PNG (raster, at ``PNG_DPI``), PDF and SVG (vector, for papers)
FIGURE_FORMATS = ("png", "pdf", "svg")
#: PNG resolution: print quality (a 4-inch panel is 800 pixels wide)
PNG_DPI = 200
#: measures outside the metric table bounded to [0, 1]: a subgroup's share of a block (accuracies per subgroup rank
#: and under an ablation by their prefixes)
UNIT_RANGE_EXTRAS = frozenset({"minority_share"})
#: a measure without a fixed range (FID, DI eq. 3 as printed, a fitted variance) spans at least this fraction
#: of its largest magnitude on the y axis, so noise in the last digits stays flat
MIN_SPAN_FRACTION = 0.2
#: up to this many generations, every one is a tick; more get integer ticks chosen by matplotlib
MAX_GENERATION_TICKS = 12

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def panel_figure(n_panels: int, width: float = 4.0, height: float = 3.2, max_cols: int = MAX_COLS):
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


def parse_formats(text: str) -> tuple[str, ...]:
    """``"png,pdf,svg"`` -> ("png", "pdf", "svg"), each once, in the order given; a ConfigError names an unknown one."""
    formats = tuple(dict.fromkeys(part.strip().lower().lstrip(".") for part in text.split(",") if part.strip()))
    unknown = [f for f in formats if f not in FIGURE_FORMATS]
    if unknown or not formats:
        raise ConfigError(f"--formats {text!r}: {'unknown format ' + ', '.join(unknown) if unknown else 'no format'}"
                          f"; choose from {', '.join(FIGURE_FORMATS)}, comma-separated (e.g. --formats png,pdf)")
    return formats


def y_limits(name: str) -> tuple[float, float] | None:
    """The fixed y range of a measure: the metric table's (accuracy and the bounded fairness measures [0, 1], MEO
    eq. 2 as printed [-1, 1]: 1 - 2 x the mean gap), [0, 1] for accuracies per subgroup rank or under an ablation;
    None for a measure without one (FID, DI eq. 3 as printed, ...)."""
    if name in UNIT_RANGE_EXTRAS or name.startswith(("acc_rank_", "ablation_acc.")):
        return UNIT_RANGE
    entry = metric_entry(name)
    return entry.y_range if entry is not None else None


def scale_y(ax, limits: tuple[float, float] | None) -> None:
    """Fixed ``limits`` where the measure has them; otherwise the data's range, widened about its centre to at least
    ``MIN_SPAN_FRACTION`` of its largest magnitude. Tick labels in plain numbers: no offset, no scientific factor."""
    from matplotlib.ticker import ScalarFormatter

    formatter = ScalarFormatter(useOffset=False)
    formatter.set_scientific(False)
    ax.yaxis.set_major_formatter(formatter)
    if limits is not None:
        ax.set_ylim(*limits)
        return
    low, high = ax.get_ylim()
    span = MIN_SPAN_FRACTION * max(abs(low), abs(high)) or 1.0
    if high - low < span:
        centre = (low + high) / 2
        ax.set_ylim(centre - span / 2, centre + span / 2)


def generation_ticks(ax, gens: Sequence[int]) -> None:
    """Integer generation ticks: every generation up to ``MAX_GENERATION_TICKS`` of them, else integers only."""
    from matplotlib.ticker import MaxNLocator

    if gens and len(gens) <= MAX_GENERATION_TICKS:
        ax.set_xticks(list(gens))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def not_available(ax, why: str) -> None:
    """A panel with nothing to draw says so ("n/a" and why) instead of standing empty; its title and labels stay."""
    ax.text(0.5, 0.5, f"n/a\n{why}", transform=ax.transAxes, ha="center", va="center", fontsize=9, color="0.35",
            wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


#: what a panel says about an infinite mean (DI eq. 3 as printed is -inf where a zero rate meets a positive one)
INFINITE_NOTE = "-inf (a zero rate beside a positive one) at generation"


def _curve(ax, stats: dict, classifier: str, metric: str, gens: list[int], label: str, **style) -> bool:
    """Draw the mean +- sd of ``metric`` over generations; False when no generation has a finite mean. An infinite
    mean cannot be drawn: the panel names its generations instead of leaving a silent gap (summary.md has the
    count of infinite seeds)."""
    points = [(g, stats[(classifier, g, metric)]) for g in gens if (classifier, g, metric) in stats]
    points = [(g, s) for g, s in points if s[2] > 0]
    infinite = [g for g, s in points if not math.isfinite(s[0]) and not math.isnan(s[0])]
    if infinite:
        ax.text(0.02, 0.02, f"{label}: {INFINITE_NOTE}{'s' if len(infinite) > 1 else ''} "
                f"{', '.join(map(str, infinite))}", transform=ax.transAxes, fontsize=7, color="0.35", va="bottom")
    points = [(g, s) for g, s in points if math.isfinite(s[0])]
    if not points:
        return False
    x = np.array([g for g, _ in points])
    mean = np.array([s[0] for _, s in points])
    std = np.nan_to_num(np.array([s[1] for _, s in points]))
    line, = ax.plot(x, mean, marker="o", markersize=3, label=label, **style)
    ax.fill_between(x, mean - std, mean + std, alpha=0.2, color=line.get_color())
    return True


#: why a panel of the report's runs can be empty
NOT_RECORDED = "not recorded by these runs"


def finish_axes(ax, title: str, ylabel: str, gens: Sequence[int], metric: str | None = None,
                 drawn: bool = True, why: str = NOT_RECORDED) -> None:
    """Title and labels; then "n/a" where nothing was ``drawn``, else integer generation ticks and the y range of
    ``metric`` (``y_limits``; None: the data's, at least ``MIN_SPAN_FRACTION`` wide)."""
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("generation")
    ax.set_ylabel(ylabel)
    if not drawn:
        if any(INFINITE_NOTE in text.get_text() for text in ax.texts):
            why = "no finite value to draw"
        not_available(ax, why)
        return
    generation_ticks(ax, gens)
    scale_y(ax, y_limits(metric) if metric else None)
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


def setting_labels(groups: list[Group]) -> dict[str, str]:
    """Each group's label in a comparison: every setting that differs between the groups (``policy=fifo,
    synthetic_share=0.25``), named by the last part of its key unless two differing keys share it; the group's name
    where no setting tells the groups apart."""
    keys = sorted({k for g in groups for k in g.differing})
    keys = [k for k in keys if len({g.differing.get(k, "<unset>") for g in groups}) > 1]
    tails = [k.split(".")[-1] for k in keys]
    names = {k: tail if tails.count(tail) == 1 else k for k, tail in zip(keys, tails)}
    labels = {g.name: ", ".join(f"{names[k]}={g.differing.get(k, '<unset>').strip(chr(34))}" for k in keys)
              for g in groups}
    if not keys or len(set(labels.values())) < len(groups):
        return {g.name: g.name for g in groups}
    return labels


def _suptitle(fig, group: Group, what: str = "") -> None:
    n = len(group.runs)
    spread = f"mean ± std over {seed_phrase(n)}" if n > 1 else "1 seed (no spread: run 3 seeds before reading trends)"
    unfinished = f"; {len(group.unfinished)} of {n} runs unfinished" if group.unfinished else ""
    fig.suptitle(f"{group.name}{what}: {spread}{unfinished}")


def save_figure(fig, path: Path, written: list[Path], formats: Sequence[str] = ("png",)) -> None:
    """``path`` in every one of ``formats`` (its suffix replaced): PNG at ``PNG_DPI``, PDF and SVG as vectors."""
    for extension in formats:
        target = path.with_suffix(f".{extension}")
        fig.savefig(target, dpi=PNG_DPI if extension == "png" else "figure")
        written.append(target)


def plot_metrics(group: Group, stats: dict, metrics: list[str], path: Path, written: list[Path],
                 reading: str | None = None, formats: Sequence[str] = ("png",)) -> Figure:
    """One panel per metric, one line per classifier, shaded +- std over seeds (Figs. 3a/4a/5/6); the title names
    the fairness ``reading`` the metrics belong to."""
    fig, axes = panel_figure(len(metrics))
    for ax, metric in zip(axes, metrics):
        drawn = [_curve(ax, stats, classifier, metric, group.generations, classifier)
                 for classifier in group.classifiers]
        finish_axes(ax, metric_label(metric), y_label(metric), group.generations, metric,
                     any(drawn))
    legend_below(fig, axes)
    _suptitle(fig, group, f", fairness reading {reading} ({reading_title(reading)})" if reading else "")
    save_figure(fig, path, written, formats)
    return fig


def plot_overview(group: Group, stats: dict, path: Path, written: list[Path],
                  formats: Sequence[str] = ("png",)) -> Figure | None:
    """The three fairness readings in one panel per measure, pooled (solid), per class (dashed) and over cells
    (dotted), and accuracy next to worst-subgroup accuracy, one colour per classifier: where the readings disagree,
    a figure of one alone would tell part of the story."""
    def recorded(metric: str) -> bool:
        return any(k[2] == metric and v[2] for k, v in stats.items())

    panels = [p for p in overview_panels() if any(recorded(m) for m, _, _ in p[2])]
    if not any(recorded(m) for p in panels for m, _, _ in p[2][1:]):
        return None  # nothing per class or per subgroup (Hard ImageNet): the metrics figure says it all
    fig, axes = panel_figure(len(panels), width=5.0, height=3.4, max_cols=2)  # 2 x 2: readable at a page's width
    colors = [f"C{k}" for k in range(len(group.classifiers))]
    for ax, (title, ylabel, lines) in zip(axes, panels):
        drawn = [(m, text, style) for m, text, style in lines if recorded(m)]
        for classifier, color in zip(group.classifiers, colors):
            for metric, text, style in drawn:
                _curve(ax, stats, classifier, metric, group.generations, f"{classifier}, {text}", color=color,
                       linestyle=style)
        finish_axes(ax, f"{title}: " + ", ".join(f"{text} ({LINE_STYLE_NAMES[style]})" for _, text, style in drawn),
                     ylabel, group.generations, lines[0][0])
    legend_below(fig, axes)
    _suptitle(fig, group, f", fairness readings (this dataset leads with {leading_reading(group.facts)})")
    save_figure(fig, path, written, formats)
    return fig


def overview_name(group: Group) -> str:
    return f"{group.stem}__{OVERVIEW_SUFFIX}.png"


def plot_ranked(group: Group, stats: dict, n_ranks: int, path: Path, written: list[Path],
                formats: Sequence[str] = ("png",)) -> Figure:
    """One panel per classifier, one line per subgroup rank and the mean over subgroups (dashed): worst, best and
    mean subgroup accuracy per generation (Figs. 3b/4b/7)."""
    fig, axes = panel_figure(len(group.classifiers))
    for ax, classifier in zip(axes, group.classifiers):
        drawn = []
        for k in range(1, n_ranks + 1):
            label = f"rank {k}" + (" (worst)" if k == 1 else " (best)" if k == n_ranks else "")
            drawn.append(_curve(ax, stats, classifier, f"acc_rank_{k}", group.generations, label))
        drawn.append(_curve(ax, stats, classifier, "acc_rank_mean", group.generations, "mean over subgroups",
                            color="black", linestyle="--"))
        finish_axes(ax, f"{classifier}: ranked subgroup accuracy", "subgroup accuracy (mean over classes)",
                     group.generations, "acc_rank_mean", any(drawn))
    legend_below(fig, axes, max_cols=4)
    _suptitle(fig, group)
    save_figure(fig, path, written, formats)
    return fig


def plot_ablation(group: Group, stats: dict, kinds: list[str], path: Path, written: list[Path],
                  formats: Sequence[str] = ("png",)) -> Figure:
    """One panel per ablation kind (plus clean accuracy), one line per classifier (Fig. 8)."""
    metrics = ["acc", *(f"ablation_acc.{k}" for k in kinds)]
    fig, axes = panel_figure(len(metrics))
    for ax, metric in zip(axes, metrics):
        drawn = [_curve(ax, stats, classifier, metric, group.generations, classifier)
                 for classifier in group.classifiers]
        finish_axes(ax, "clean accuracy" if metric == "acc" else f"accuracy, {metric.split('.', 1)[1]}",
                     "accuracy", group.generations, metric, any(drawn))
    legend_below(fig, axes)
    _suptitle(fig, group, ", object-mask ablations")
    save_figure(fig, path, written, formats)
    return fig


def plot_fid(groups: list[Group], fids: dict[str, dict[int, Stat]], path: Path, written: list[Path],
             formats: Sequence[str] = ("png",)) -> Figure:
    """Generator FID per generation, one line per group; the title names the features it was computed on."""
    fig, axes = panel_figure(1, width=7.0, height=4.2)
    ax = axes[0]
    gens: set[int] = set()
    shown = [g for g in groups if fids[g.name]]
    features = {fid_features_text(g.fid_extractors) for g in shown}
    drawn: list[bool] = []
    for group in shown:
        label = f"{group.name} ({seed_phrase(len(group.runs))})"
        if len(features) > 1:
            label += f": {fid_features_text(group.fid_extractors)}"
        for samples, per_gen in (("raw block", fids[group.name]), ("kept", fid_by_generation(group, "fid_kept"))):
            stats = {("fid", g, "fid"): s for g, s in per_gen.items()}
            gens |= set(per_gen)
            drawn.append(_curve(ax, stats, "fid", "fid", sorted(per_gen), f"{label}, {samples}"))
    title = "generator FID, raw block and kept samples (mean ± std over seeds)"
    if len(features) == 1:
        title += "\nfeatures: " + features.pop()
    finish_axes(ax, title, "FID (lower = closer to the real training images)", sorted(gens), "fid", any(drawn))
    legend_below(fig, axes, fontsize=7, max_cols=2)
    save_figure(fig, path, written, formats)
    return fig


#: the comparison figure's panels: what a data regime or a mitigation changes (accuracy, the subgroup gap, the
#: worst and best subgroup, and the block's subgroup imbalance u_t)
COMPARISON_METRICS = [("acc", "accuracy"), ("md", "MD ({reading})"), ("acc_rank_1", "worst-subgroup accuracy"),
                      ("acc_rank_best", "best-subgroup accuracy"), ("imbalance_u", "u_t (block subgroup imbalance)")]


def comparison_name(dataset: str) -> str:
    return f"{dataset}__comparison.png"


def plot_comparison(groups: list[Group], stats_by_group: dict[str, dict], path: Path, written: list[Path],
                    formats: Sequence[str] = ("png",)) -> Figure:
    """Groups of one dataset side by side (data regimes, with vs without a mitigation): for each classifier a panel
    per metric of ``COMPARISON_METRICS`` the runs recorded (at most ``MAX_COLS`` a row), one line per group, labelled
    by the settings that tell the groups apart."""
    classifiers = list(dict.fromkeys(c for g in groups for c in g.classifiers))
    gens = sorted({gen for g in groups for gen in g.generations})

    lead = leading_reading(groups[0].facts)

    def resolved(group: Group, metric: str) -> str:
        n_ranks = max((len(r.get("acc_rank") or []) for r in group.rows), default=0)
        if metric == "md":  # the spread in the dataset's leading fairness reading
            return next(m for m in metric_names(FAIRNESS, reading=lead) if metric_entry(m).family == "md")
        return f"acc_rank_{n_ranks}" if metric == "acc_rank_best" else metric

    metrics = [(m, title.format(reading=lead)) for m, title in COMPARISON_METRICS
               if any(k[2] == resolved(g, m) and v[2] for g in groups for k, v in stats_by_group[g.name].items())]
    labels = setting_labels(groups)
    fig, axes = panel_figure(len(classifiers) * len(metrics), width=3.8, height=3.0)
    for row, classifier in enumerate(classifiers):
        for col, (metric, title) in enumerate(metrics):
            ax = axes[row * len(metrics) + col]
            drawn = [_curve(ax, stats_by_group[group.name], classifier, resolved(group, metric), group.generations,
                            f"{labels[group.name]} ({seed_phrase(len(group.runs))})") for group in groups]
            ylabel = y_label(resolved(groups[0], metric)) if metric_entry(resolved(groups[0], metric)) else title
            finish_axes(ax, f"{classifier}: {title}" if metric != "imbalance_u" else title, ylabel, gens,
                         resolved(groups[0], metric), any(drawn), f"{classifier}: {NOT_RECORDED}")
    legend_below(fig, axes, max_cols=4)
    dataset = groups[0].dataset
    fig.suptitle(f"{dataset}: {len(groups)} groups compared (mean ± std over each group's seeds)")
    save_figure(fig, path, written, formats)
    return fig


def stack_sample_sheets(run: Run, path: Path, written: list[Path]) -> bool:
    """The run's gen_XX/samples.png sheets stacked top to bottom, each under a "generation N" header (Figs. 10-12);
    the sheets label their rows with the class names themselves."""
    from PIL import Image, ImageDraw

    sheets = run.record.layout.sample_sheets()
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
