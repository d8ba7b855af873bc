"""The paper's comparative claims as statistics with 95% intervals, over the groups and classifiers of one report.

Each claim is reduced to one number per seed, so that the seed stays the unit of replication:

* **trend difference between two groups** (section 4.2, Figs. 3-4: biased vs unbiased initialisation; Fig. 6:
  "pretrained models degrade faster"): each seed's least-squares slope over the generations (of log B_t for the bias
  measure, of accuracy for accuracy), compared between the groups with Welch's two-sample t-test
  (``scipy.stats.ttest_ind(equal_var=False)``) and its interval. Pairs are groups of one dataset whose configs
  differ in at most ``MAX_DIFFERING_KEYS`` keys (a one-factor comparison); for Fig. 6 only classifiers whose
  ``pretrained`` setting differs between the groups;
* **worst vs best subgroup** (Fig. 7, "the worst subgroup falls more steeply"): per seed, the slope of the worst
  subgroup's accuracy (acc_rank[0]) minus the best's (acc_rank[-1]), one-sample t-test and interval;
* **correlation of accuracy with the generation** (Fig. 9, Hard ImageNet's "negative correlation"; given for every
  group, since any dataset's accuracy can be read that way): each seed's Pearson r over its generations (at least 3),
  averaged on Fisher's z scale with a t interval, transformed back.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from reporting.amplification import bias_value, finite_or_none, measures_for
from reporting.readings import leading_reading
from reporting.runs import Group, flatten_config
from reporting.setup import classifier_settings
from reporting.trend import CI_LEVEL, TSummary, p_text, per_seed_slopes, percent, t_summary

#: groups whose configs differ in more keys than this are not compared (not a one-factor comparison)
MAX_DIFFERING_KEYS = 2
#: Fisher's z of |r| = 1 is infinite: a seed whose accuracy is exactly linear in the generation counts as this r
MAX_ABS_R = 0.9999


@dataclass
class Comparison:
    """One comparative statistic: ``estimate`` and its 95% interval in ``unit``; ``p_value`` of "no difference"."""

    figure: str
    subject: str  # what is compared, e.g. "<dataset> / lenet: biased vs unbiased"
    quantity: str
    unit: str
    estimate: float
    low: float
    high: float
    p_value: float
    seeds: str  # "3 vs 3 seeds", "3 seeds"
    method: str
    reading: str  # the conclusion in words
    between_groups: bool = False

    def text(self) -> str:
        interval = (f"95% CI [{self.low:+.2f}, {self.high:+.2f}], {p_text(self.p_value)}"
                    if math.isfinite(self.low) and math.isfinite(self.high) else "no interval (needs >= 2 seeds)")
        unit = f" {self.unit}" if self.unit else ""
        return (f"{self.figure}: {self.subject}: {self.quantity} {self.estimate:+.2f}{unit}, {interval} "
                f"({self.seeds}; {self.method}): {self.reading}")


def seed_table(group: Group, classifier: str, value: Callable[[dict], float | None]) -> tuple[np.ndarray, np.ndarray]:
    """(seeds x generations table of ``value(row)`` with NaN where missing, the generations)."""
    generations = np.asarray(group.generations)
    table = np.full((len(group.runs), generations.size), np.nan)
    for s, run in enumerate(group.runs):
        for row in run.rows:
            if row["classifier"] == classifier:
                number = value(row)
                if number is not None:
                    table[s, int(np.searchsorted(generations, int(row["generation"])))] = number
    return table, generations


def _accuracy(row: dict) -> float | None:
    return finite_or_none(row.get("acc"))


def _rank(index: int) -> Callable[[dict], float | None]:
    def read(row: dict) -> float | None:
        ranks = row.get("acc_rank") or []
        return finite_or_none(ranks[index]) if len(ranks) >= 2 else None
    return read


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def per_seed_correlations(values: np.ndarray, generations: np.ndarray) -> np.ndarray:
    """Pearson r of each seed's values with the generation, over the generations it has (NaN = missing): (...,
    seeds, generations) -> (..., seeds); NaN with fewer than 3 values or values that do not vary."""
    values = np.asarray(values, dtype=float)
    x = np.broadcast_to(np.asarray(generations, dtype=float), values.shape)
    present = np.isfinite(values)
    count = present.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = np.where(present, x - np.where(present, x, 0.0).sum(-1, keepdims=True) / np.maximum(count, 1)[..., None],
                      0.0)
        y = np.where(present, values, 0.0)
        dy = np.where(present, y - y.sum(-1, keepdims=True) / np.maximum(count, 1)[..., None], 0.0)
        r = (dx * dy).sum(-1) / np.sqrt((dx ** 2).sum(-1) * (dy ** 2).sum(-1))
    varies = np.where(present, values, -np.inf).max(-1) > np.where(present, values, np.inf).min(-1)
    return np.where((count >= 3) & varies & np.isfinite(r), np.clip(r, -1.0, 1.0), np.nan)


def correlation_summary(accuracy: np.ndarray, generations: np.ndarray) -> TSummary:
    """Fig. 9's statistic: per-seed r, Fisher's z (|r| capped at ``MAX_ABS_R``), t summary across seeds (on the z
    scale; ``math.tanh`` turns it back into r)."""
    r = per_seed_correlations(accuracy, generations)
    return t_summary(np.arctanh(np.clip(r, -MAX_ABS_R, MAX_ABS_R)))


def slope_difference(worst: np.ndarray, best: np.ndarray, generations: np.ndarray) -> np.ndarray:
    """Fig. 7's per-seed number: the slope of the worst subgroup's accuracy minus the best's (..., seeds)."""
    return per_seed_slopes(worst, generations, log=False) - per_seed_slopes(best, generations, log=False)


def welch(first: np.ndarray, second: np.ndarray) -> tuple:
    """(mean(second) - mean(first), interval low, high, p) of Welch's t-test over the last axis (any batch axes
    before it: the calibration test passes thousands of simulated pairs); the exact difference with a zero-width
    interval where neither sample varies; NaN interval and p with fewer than 2 seeds on a side."""
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    difference = second.mean(-1) - first.mean(-1)
    if first.shape[-1] < 2 or second.shape[-1] < 2:
        nan = np.full(np.shape(difference), np.nan)
        return _scalar(difference), _scalar(nan), _scalar(nan), _scalar(nan)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no spread on either side: handled below
        result = stats.ttest_ind(second, first, equal_var=False, axis=-1)
        interval = result.confidence_interval(CI_LEVEL)
    exact = (np.ptp(first, axis=-1) == 0) & (np.ptp(second, axis=-1) == 0)
    low = np.where(exact, difference, interval.low)
    high = np.where(exact, difference, interval.high)
    p = np.where(exact, np.where(difference == 0, 1.0, 0.0), result.pvalue)
    return _scalar(difference), _scalar(low), _scalar(high), _scalar(p)


def _scalar(value: np.ndarray):
    """A 0-d result as a float, a batch as an array."""
    return float(value) if np.ndim(value) == 0 else value


def _direction(low: float, high: float, up: str, down: str, none: str) -> str:
    if low > 0:
        return up
    if high < 0:
        return down
    return none


def _pair_label(differing: dict[str, tuple[str, str]], first: Group, second: Group) -> tuple[str, str] | None:
    """(figure label, subject) of a one-factor pair, or None for groups that differ in too much."""
    if not differing or len(differing) > MAX_DIFFERING_KEYS:
        return None
    keys = ", ".join(f"{k.split('.')[-1]}={differing[k][1].strip(chr(34))} vs {differing[k][0].strip(chr(34))}"
                     for k in differing if k != "classifiers")
    if any(k.endswith(".biased") for k in differing):
        return "Section 4.2 (Figs. 3-4), biased vs unbiased initialisation", f"{second.name} vs {first.name}"
    return "Trend difference", f"{second.name} vs {first.name}" + (f" ({keys})" if keys else "")


def _ordered(first: Group, second: Group, differing: dict[str, tuple[str, str]]) -> tuple[Group, Group, dict]:
    """The pair as (reference, treated): unbiased before biased; otherwise as given."""
    for key, (a, b) in differing.items():
        if key.endswith(".biased") and a == "true" and b == "false":
            return second, first, {k: (v[1], v[0]) for k, v in differing.items()}
    return first, second, differing


def group_pair_comparisons(groups: list[Group]) -> list[Comparison]:
    """Trend differences between the one-factor pairs of groups of a dataset: the bias measure and accuracy of every
    classifier both groups have; Fig. 6 where a classifier is pretrained in one group and from scratch in the other."""
    found: list[Comparison] = []
    flats = {g.name: flatten_config(json.loads(g.key)) for g in groups}
    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            if a.dataset != b.dataset or len(a.runs) < 2 or len(b.runs) < 2:
                continue
            keys = sorted(set(flats[a.name]) | set(flats[b.name]))
            differing = {k: (flats[a.name].get(k, "<unset>"), flats[b.name].get(k, "<unset>")) for k in keys
                         if flats[a.name].get(k) != flats[b.name].get(k)}
            first, second, differing = _ordered(a, b, differing)
            label = _pair_label(differing, first, second)
            if label is None:
                continue
            pretrained = {g.name: {str(s["name"]): bool(s["pretrained"]) for s in classifier_settings(g.runs[0])}
                          for g in (first, second)}
            for classifier in (c for c in first.classifiers if c in second.classifiers):
                figure, subject = label
                flags = (pretrained[first.name].get(classifier), pretrained[second.name].get(classifier))
                reference, treated = first, second
                if flags[0] is not None and flags[1] is not None and flags[0] != flags[1]:
                    figure = "Fig. 6, pretrained vs from scratch (\"pretrained models degrade faster\")"
                    reference, treated = (first, second) if flags[1] else (second, first)
                    subject = f"{treated.name} (pretrained) vs {reference.name} (scratch)"
                elif "classifiers" in differing and flags[0] == flags[1]:
                    continue  # the groups differ in another classifier's setting: not this classifier's comparison
                found += _trend_pair(figure, f"{a.dataset} / {classifier}: {subject}", reference, treated, classifier)
    return found


def _trend_pair(figure: str, subject: str, reference: Group, treated: Group, classifier: str) -> list[Comparison]:
    measure = measures_for(leading_reading(reference.facts))[0]
    out = []
    for quantity, value, log in ((f"difference of the per-generation trend of {measure}",
                                  lambda r: bias_value(r, measure), True),
                                 ("difference of the accuracy trend", _accuracy, False)):
        slopes = [_finite(per_seed_slopes(*seed_table(g, classifier, value), log=log)) for g in (reference, treated)]
        if slopes[0].size < 2 or slopes[1].size < 2:
            continue
        difference, low, high, p = welch(*slopes)
        if log:
            estimate, low, high, unit = percent(difference), percent(low), percent(high), "%/generation (relative)"
            what = measure
        else:
            estimate, low, high = 100 * difference, 100 * low, 100 * high
            unit, what = "accuracy points/generation", "accuracy"
        reading = _direction(low, high,
                             f"{what} of {treated.name} rises faster (or falls slower) than of {reference.name}",
                             f"{what} of {treated.name} falls faster (or rises slower) than of {reference.name}",
                             "no evidence that the trends differ")
        out.append(Comparison(figure, subject, quantity, unit, estimate, low, high, p,
                              f"{slopes[1].size} vs {slopes[0].size} seeds",
                              "Welch t-test on per-seed slopes", reading, between_groups=True))
    return out


def worst_vs_best(group: Group) -> list[Comparison]:
    """Fig. 7: per classifier, the worst subgroup's accuracy slope minus the best's, per seed."""
    out = []
    for classifier in group.classifiers:
        (worst_table, generations), (best_table, _) = (seed_table(group, classifier, _rank(0)),
                                                       seed_table(group, classifier, _rank(-1)))
        worst = per_seed_slopes(worst_table, generations, log=False)
        best = per_seed_slopes(best_table, generations, log=False)
        difference = _finite(slope_difference(worst_table, best_table, generations))
        if difference.size == 0:
            continue
        summary = t_summary(difference)
        mean, low, high = (100 * float(v) for v in (summary.mean, summary.low, summary.high))
        reading = _direction(low, high, "the worst subgroup gains on the best",
                             "the worst subgroup falls more steeply (or rises more slowly) than the best",
                             f"no evidence of a different slope with {difference.size} seeds")
        detail = (f"worst {100 * np.nanmean(worst):+.2f}, best {100 * np.nanmean(best):+.2f} accuracy "
                  "points/generation; ")
        out.append(Comparison("Fig. 7, worst vs best subgroup", f"{group.name} / {classifier}",
                              detail + "worst-minus-best slope", "accuracy points/generation", mean, low, high,
                              float(summary.p_value), f"{difference.size} seeds",
                              "one-sample t-test on per-seed slope differences", reading))
    return out


def accuracy_correlation(group: Group) -> list[Comparison]:
    """Fig. 9: the correlation of accuracy with the generation, per classifier (Fisher z over seeds)."""
    out = []
    for classifier in group.classifiers:
        summary = correlation_summary(*seed_table(group, classifier, _accuracy))
        n_seeds = int(summary.n)
        if not n_seeds:
            continue
        mean, low, high = (math.tanh(float(v)) if math.isfinite(float(v)) else math.nan
                           for v in (summary.mean, summary.low, summary.high))
        reading = _direction(low, high, "accuracy rises with the generation", "a negative correlation: accuracy "
                             "falls with the generation", f"no evidence of a correlation with {n_seeds} seeds")
        out.append(Comparison("Fig. 9, accuracy vs generation", f"{group.name} / {classifier}",
                              "Pearson r of accuracy with the generation", "", mean, low, high,
                              float(summary.p_value), f"{n_seeds} seeds",
                              "per-seed r, Fisher z, t interval", reading))
    return out


def comparisons(groups: list[Group]) -> list[Comparison]:
    """Every comparison the report's groups allow."""
    found = group_pair_comparisons(groups)
    for group in groups:
        found += worst_vs_best(group)
        found += accuracy_correlation(group)  # the paper claims it for Hard ImageNet; any dataset can be read so
    return found


def comparisons_markdown(found: list[Comparison]) -> str:
    lines = ["## Comparisons the paper makes", "",
             "Each comparison reduces every seed to one number (a slope over the generations, a difference of slopes, "
             "a correlation) and gives a 95% t interval over seeds; trend differences between two groups use "
             "Welch's t-test. Bias trends are relative changes per generation (slopes of log B_t), accuracy trends "
             "accuracy points per generation. Group pairs are compared when they are of one dataset and their "
             f"configs differ in at most {MAX_DIFFERING_KEYS} keys.", ""]
    if not found:
        return "\n".join([*lines, "No comparison applies to these runs (they need subgroups, two groups of one "
                          "dataset with >= 2 seeds each, or 3 generations for a correlation).", ""])
    lines += [f"- {c.text()}" for c in found]
    return "\n".join([*lines, ""])


CSV_COLUMNS = ("figure", "subject", "quantity", "unit", "estimate", "ci_low", "ci_high", "p_value", "seeds", "method",
               "reading")


def write_comparisons_csv(found: list[Comparison], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for c in found:
            writer.writerow([c.figure, c.subject, c.quantity, c.unit, *(repr(v) if math.isfinite(v) else "" for v in
                             (c.estimate, c.low, c.high, c.p_value)), c.seeds, c.method, c.reading])
