"""The report's check of the analytic sandbox against theory: for every group of sandbox runs (a ``sandbox`` section
in its config), the measured curves across seeds beside the closed-form ones (``sandbox.theory``), a
table of both at the last generation, and how often a 95% percentile-bootstrap interval from 3-seed groups covers
the known true A_t. ``cli.py report`` adds it to the generic report (``report_main(..., sections=[sandbox_section])``),
so reporting never imports the sandbox.

Figure ``figures/sandbox__known_answers.png``: the fitted Gaussian's variance / the true one; a class's minority share
in each block, mean over seeds; its variance across seeds. Measured: solid with a band of ± 2 standard errors over
seeds; theory: dashed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reporting.figures import finish_axes, legend_below, panel_figure, save_figure, setting_labels
from reporting.runs import Group
from sandbox.generators import GENERATORS
from sandbox.interval_coverage import interval_coverage
from sandbox.loop import Regime
from sandbox.theory import known_answers
from sandbox.world import GaussianMixtureWorld

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURE = "sandbox__known_answers.png"
COVERAGE_GROUP = 3
#: how often the percentile bootstrap over seeds covered the true A_t on the shipped config's 100 seeds
#: (configs/sandbox/gaussian_mixture.yaml, groups of consecutive seeds; sandbox/interval_coverage.py): said of
#: sandbox groups with fewer than 10 seeds, the runs it was measured on
MEASURED_COVERAGE = ("3 seeds covered it in 71-80% of cases, from 5 seeds 81-89%, from 10 seeds 89-97% "
                     "(docs/beyond-the-paper.md#analytic-sandbox-checking-the-loop-against-theory)")
PANELS = (("fitted_variance_ratio", "fitted variance / true variance", "ML Gaussian: variance collapse"),
          ("minority_share", "minority share of a class's block", "mixture: minority share, mean over seeds"),
          ("minority_share_variance", "variance across seeds", "mixture: minority share, variance over seeds"))


def is_sandbox(group: Group) -> bool:
    return isinstance(group.runs[0].config.get("sandbox"), dict)


def _generations(group: Group) -> int:
    return int(group.runs[0].planned_generations or max(group.generations))


def setting(group: Group) -> tuple[Regime, GaussianMixtureWorld]:
    """The regime and world the group's runs recorded in their config.yaml."""
    section = group.runs[0].config["sandbox"]
    return Regime.from_config(section.get("regime") or {"name": group.name}), GaussianMixtureWorld(
        **(section.get("world") or {}))


def theory(group: Group) -> dict[str, np.ndarray]:
    regime, world = setting(group)
    return known_answers(regime, world, _generations(group))


def per_seed(group: Group, key: str) -> np.ndarray:
    """(seeds, generations + 1, classes) of a per-class block value (``fitted_variance_class`` or
    ``minority_share_class``); generation 0 is the real data (variance ratio 1, the real minority share)."""
    generations = _generations(group)
    world = setting(group)[1]
    start = 1.0 if key == "fitted_variance_class" else world.real_minority_share()
    values = np.full((len(group.runs), generations + 1, world.num_classes), np.nan)
    values[:, 0] = start
    for s, run in enumerate(group.runs):
        for t in range(1, generations + 1):
            entry = (run.blocks.get(t) or {}).get(key)
            if entry is not None:
                values[s, t] = entry
    return values


def measured(group: Group) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """quantity -> (value per generation, its standard error over seeds)."""
    n = len(group.runs)
    variance, share = per_seed(group, "fitted_variance_class"), per_seed(group, "minority_share_class")
    out = {}
    seed_variance = variance.mean(2)  # classes averaged within each seed
    out["fitted_variance_ratio"] = (seed_variance.mean(0), seed_variance.std(0, ddof=1) / math.sqrt(n))
    seed_share = share.mean(2)
    out["minority_share"] = (seed_share.mean(0), seed_share.std(0, ddof=1) / math.sqrt(n))
    across = share.var(0, ddof=1)  # (generations + 1, classes): each class's variance over seeds
    # the standard error of a sample variance of n (near-normal) values is var sqrt(2 / (n - 1)); classes average
    out["minority_share_variance"] = (across.mean(1), across.mean(1) * math.sqrt(2 / (n - 1) / share.shape[2]))
    return out


def measured_by(key: str) -> str:
    """The generators whose runs measure ``key``, for the panel that no run of these measures."""
    return " or ".join(name for name, cls in GENERATORS.items() if key in cls.measures)


def has_quantity(group: Group, key: str) -> bool:
    """Whether the group's runs measure ``key`` (its generator ``measures`` it); the closed form may still be unknown
    for its regime (``theory``), and then the panel shows the measurement alone."""
    return key in setting(group)[0].generator.measures


def legend_labels(groups: list[Group]) -> dict[str, str]:
    """Each group's regime name where the names tell the groups apart (one sweep: its config made them unique),
    else every setting that differs (``setting_labels``)."""
    names = {group.name: setting(group)[0].name for group in groups}
    return names if len(set(names.values())) == len(names) else setting_labels(groups)


def plot_known_answers(groups: list[Group], path: Path, written: list[Path],
                       formats: Sequence[str] = ("png",)) -> Figure:
    """One panel per quantity of ``PANELS``, a colour per group, measured (solid, ± 2 s.e.) beside theory (dashed)."""
    fig, axes = panel_figure(len(PANELS), width=4.6, height=3.4)
    labels = legend_labels(groups)
    for ax, (key, ylabel, title) in zip(axes, PANELS):
        generations: list[int] = []
        theory_drawn = False
        for index, group in enumerate(groups):  # one colour per group in every panel
            answers = theory(group)
            if not has_quantity(group, key):
                continue
            value, error = measured(group)[key]
            x = np.arange(len(value))
            generations = sorted({*generations, *x.tolist()})
            line, = ax.plot(x, value, marker="o", markersize=3, color=f"C{index}",
                            label=f"{labels[group.name]} (measured)")
            ax.fill_between(x, value - 2 * error, value + 2 * error, alpha=0.2, color=line.get_color())
            if key in answers:
                theory_drawn = True
                ax.plot(x, answers[key], linestyle="--", color=line.get_color(), label=f"{labels[group.name]} (theory)")
        finish_axes(ax, title, ylabel, generations, key, bool(generations),
                     f"no run with the {measured_by(key)} generator among these")
        if generations and not theory_drawn:
            ax.text(0.98, 0.03, "no closed form for these regimes: measured only", transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=7, color="0.35")
    legend_below(fig, axes, fontsize=7, max_cols=4)
    seeds = sorted({len(g.runs) for g in groups})
    fig.suptitle(f"analytic sandbox: measured (band ± 2 s.e. over {'/'.join(map(str, seeds))} seeds) vs theory "
                 "(dashed)")
    save_figure(fig, path, written, formats)
    return fig


def _true_ratios(answers: dict, key: str) -> np.ndarray | None:
    """The true A_t of generations 1..T (transitions t -> t + 1 for t >= 1) of a quantity with a closed-form mean."""
    curve = answers.get(key)
    if curve is None or len(curve) < 3:
        return None
    return curve[2:] / curve[1:-1]


def sandbox_markdown(groups: list[Group]) -> str:
    """The summary's section: measured vs theory at the last generation, and the intervals' coverage."""
    lines = ["## Known answers (analytic sandbox)", "",
             "Measured across seeds at the last generation beside the closed form "
             "(docs/beyond-the-paper.md#analytic-sandbox-checking-the-loop-against-theory); "
             f"the figure is `figures/{FIGURE}`. Coverage: the share of the 95% percentile-bootstrap intervals of A_t "
             f"(section 5) that the report used before its t intervals, each from a group of {COVERAGE_GROUP} seeds "
             "of these runs, that contain the true A_t.", "",
             "| group | quantity | generation | measured (± s.e.) | theory | 95% intervals from 3 seeds covering "
             "the true A_t |", "|---|---|---|---|---|---|"]
    for group in groups:
        answers, found = theory(group), measured(group)
        last = _generations(group)
        for key in ("fitted_variance_ratio", "minority_share", "minority_share_variance"):
            if key not in answers:
                continue
            value, error = found[key]
            coverage = "n/a"
            truth = _true_ratios(answers, key)
            if truth is not None and key != "minority_share_variance" and len(group.runs) >= COVERAGE_GROUP:
                seed_values = (per_seed(group, "fitted_variance_class" if key == "fitted_variance_ratio"
                                        else "minority_share_class").mean(2))[:, 1:]
                result = interval_coverage(seed_values, truth, COVERAGE_GROUP)
                coverage = f"{100 * result.rate:.0f}% of {result.intervals}"
            lines.append(f"| {group.name} | {key} | {last} | {value[last]:.4g} ± {error[last]:.2g} | "
                         f"{answers[key][last]:.4g} | {coverage} |")
    few = [group.name for group in groups if len(group.runs) < 10]
    if few:
        lines += ["", f"- **{', '.join(few)}**: on this analytic sandbox, where the truth is known, a percentile "
                  f"bootstrap over seeds is too narrow: its 95% intervals from {MEASURED_COVERAGE}. The report's t "
                  "intervals are calibrated in the test suite instead (docs/reporting.md, Calibration)."]
    return "\n".join(lines) + "\n"


def sandbox_section(groups: list[Group], figures: Path, written: list[Path],
                    formats: Sequence[str] = ("png",)) -> str:
    """Draw the figure (in every one of ``formats``) and return the summary section; "" when no group is a sandbox
    run."""
    chosen = [g for g in groups if is_sandbox(g) and len(g.runs) >= 2]
    if not chosen:
        return ""
    plot_known_answers(chosen, figures / FIGURE, written, formats)
    return "\n" + sandbox_markdown(chosen)
