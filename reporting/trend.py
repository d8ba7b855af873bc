"""Trends across generations with the seed as the unit of replication: each seed's least-squares slope over every
generation it has, then a one-sample t-test and t interval across seeds (k - 1 degrees of freedom).

Generations within a seed are not independent (they share the seed's data, weights and stack), seeds are: so the
slope of each seed is one number, and the spread of those numbers is the whole uncertainty. A percentile bootstrap
over 3 seeds can draw only 10 resamples and its "95%" interval covered 79% of simulated 3-seed runs without change
(docs/reporting.md); a t interval holds its level at
any number of seeds when the per-seed numbers are roughly normal (``tests/reporting/test_calibration.py`` measures
it). Every function takes arrays with any leading batch axes, so the calibration test runs thousands of simulated
experiments through exactly this code in one call.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.power import TTestPower

CI_LEVEL = 0.95
ALPHA = 1.0 - CI_LEVEL
#: a trend verdict says "stable" only when its interval rules out a change this large per generation either way
STABLE_BAND = 0.10
#: per-generation changes the seeds-needed line plans for, and the power it plans with
PLANNING_CHANGES = (0.05, 0.10)
PLANNING_POWER = 0.8
#: the seeds-needed line says "n/a" beyond this many seeds
MAX_SEEDS_SEARCHED = 10_000
FIRST_SEARCH = 100


def per_seed_slopes(values: np.ndarray, generations: np.ndarray, log: bool = True) -> np.ndarray:
    """Least-squares slope of each seed's values (of log values with ``log``) on the generation index.

    ``values`` is (..., seeds, generations) with NaN for a missing value; with ``log`` a value <= 0 (no log) counts
    as missing too, so a seed whose bias touches 0 once keeps the slope of its other generations rather than leaving
    the group (the seeds whose bias falls fastest are the ones that reach 0). A seed with fewer than 2 values has a
    NaN slope. Returns (..., seeds).
    """
    values = np.asarray(values, dtype=float)
    x = np.broadcast_to(np.asarray(generations, dtype=float), values.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.log(np.where(values > 0, values, np.nan)) if log else values.copy()
        present = np.isfinite(y)
        count = present.sum(-1)
        x_mean = np.where(present, x, 0.0).sum(-1) / np.maximum(count, 1)
        y_filled = np.where(present, y, 0.0)
        y_mean = y_filled.sum(-1) / np.maximum(count, 1)
        dx = np.where(present, x - x_mean[..., None], 0.0)
        slope = (dx * (y_filled - y_mean[..., None])).sum(-1) / (dx ** 2).sum(-1)
    return np.where((count >= 2) & np.isfinite(slope), slope, np.nan)


@dataclass
class TSummary:
    """Mean of per-seed numbers with its t interval and the two-sided p-value of "mean = 0" (arrays or scalars)."""

    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    p_value: np.ndarray
    sd: np.ndarray  # sample standard deviation (ddof=1) of the per-seed numbers
    n: np.ndarray  # seeds with a number


def _complete_t_summary(samples: np.ndarray, level: float) -> TSummary:
    """``t_summary`` of (..., seeds) without NaN and with >= 2 seeds."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # zero spread: scipy warns, handled below
        result = stats.ttest_1samp(samples, 0.0, axis=-1)
        interval = result.confidence_interval(level)
    mean, sd = samples.mean(-1), samples.std(-1, ddof=1)
    flat_spread = sd == 0
    low = np.where(flat_spread, mean, interval.low)
    high = np.where(flat_spread, mean, interval.high)
    p = np.where(flat_spread, np.where(mean == 0, 1.0, 0.0), result.pvalue)
    return TSummary(mean, low, high, p, sd, np.full(mean.shape, samples.shape[-1]))


def t_summary(samples: np.ndarray, level: float = CI_LEVEL) -> TSummary:
    """``samples`` is (..., seeds) with NaN for a seed without a number: the one-sample t-test and t interval of
    scipy.stats (k - 1 degrees of freedom) over the finite ones; NaN interval and p-value below 2 seeds.

    Zero spread (every seed the same) gives a zero-width interval at that value and p = 0 unless the value is 0.
    """
    samples = np.asarray(samples, dtype=float)
    if samples.shape[-1] >= 2 and np.isfinite(samples).all():
        return _complete_t_summary(samples, level)
    flat = samples.reshape(-1, samples.shape[-1])  # ragged (unfinished runs, undefined logs): row by row
    columns = np.full((5, flat.shape[0]), np.nan)  # mean, low, high, p, sd
    for index, row in enumerate(flat):
        kept = row[np.isfinite(row)]
        if kept.size >= 2:
            one = _complete_t_summary(kept, level)
            columns[:, index] = [one.mean, one.low, one.high, one.p_value, one.sd]
        elif kept.size == 1:
            columns[0, index] = kept[0]
    mean, low, high, p, sd = (c.reshape(samples.shape[:-1]) for c in columns)
    return TSummary(mean, low, high, p, sd, np.isfinite(samples).sum(-1))


#: verdict codes of ``trend_verdict`` (arrays of them in the calibration test)
GROWS, SHRINKS, STABLE, UNDETERMINED = 1, -1, 0, 2


def trend_verdict(summary: TSummary, band: float = STABLE_BAND, alpha: float = ALPHA) -> np.ndarray:
    """GROWS / SHRINKS where the t-test rejects "no trend" at ``alpha``; STABLE where it does not and the interval of
    the per-generation change lies within [-``band``, +``band``] (a change that large either way is ruled out);
    UNDETERMINED otherwise (too few seeds, or too much spread, to tell a real change from none)."""
    significant = summary.p_value < alpha
    narrow = (summary.low > math.log1p(-band)) & (summary.high < math.log1p(band))
    code = np.where(significant, np.where(summary.mean > 0, GROWS, SHRINKS), np.where(narrow, STABLE, UNDETERMINED))
    return np.where(np.isfinite(summary.p_value), code, UNDETERMINED)


def seeds_needed(slope_sd: float, change: float, power: float = PLANNING_POWER, alpha: float = ALPHA) -> int | None:
    """Seeds a two-sided one-sample t-test on per-seed log slopes needs to detect a ``change`` per generation
    (0.05 = 5%/generation) with ``power``, given the per-seed slope spread ``slope_sd`` (statsmodels TTestPower).
    None without a spread estimate; 2 where the spread is 0."""
    if not math.isfinite(slope_sd):
        return None
    if slope_sd < 1e-12:  # every seed the same slope (up to rounding): any change is told apart at 2 seeds
        return 2
    effect = math.log1p(change) / slope_sd
    if effect > 50:  # 2 seeds already have power ~1 (and the noncentral t gives NaN this far out)
        return 2
    analysis = TTestPower()
    for counts in (np.arange(2, FIRST_SEARCH + 1), np.arange(FIRST_SEARCH + 1, MAX_SEEDS_SEARCHED + 1)):
        # the power at every seed count of the range in one vectorised call (root finding costs 30 such calls)
        enough = analysis.power(effect_size=effect, nobs=counts, alpha=alpha, alternative="two-sided") >= power
        if enough.any():
            return int(counts[np.argmax(enough)])
    return None


def p_text(p_value: float) -> str:
    """``p = 0.031``, ``p < 0.001``."""
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def percent(log_value: float) -> float:
    """A log change per generation as a percentage change (log 1.05 -> 5.0)."""
    return 100.0 * math.expm1(log_value) if math.isfinite(log_value) else math.nan


@dataclass
class Trend:
    """A bias measure's trend over generations in one group: the mean per-seed slope of log B_t on t with its
    t interval, the verdict, and the seeds needed to detect the planning changes."""

    n_seeds: int
    n_generations: int
    summary: TSummary
    verdict_code: int
    needed: dict[float, int | None]
    non_positive: int = 0  # values B_t <= 0 left out of their seed's slope (log B_t undefined)

    @property
    def change(self) -> tuple[float, float, float]:
        """(%/generation, interval low, interval high)."""
        s = self.summary
        return percent(float(s.mean)), percent(float(s.low)), percent(float(s.high))

    @property
    def verdict(self) -> str:
        if self.n_seeds == 0:
            return "undetermined (no seed has 2 generations with B_t > 0, so log B_t has no slope)"
        if self.n_seeds == 1:
            return "undetermined with 1 seed (a trend needs >= 2 seeds for an interval)"
        if self.verdict_code == GROWS:
            return "bias amplified"
        if self.verdict_code == SHRINKS:
            return "bias reduced"
        if self.verdict_code == STABLE:
            return f"stable (a change of {100 * STABLE_BAND:.0f}%/generation either way ruled out)"
        return f"undetermined with {self.n_seeds} seeds"

    def text(self) -> str:
        """``bias amplified: 4.1%/generation [1.2, 7.0], p = 0.003, 3 seeds x 11 generations``."""
        mean, low, high = self.change
        if self.n_seeds < 2 or not math.isfinite(float(self.summary.p_value)):
            detail = f"{mean:+.1f}%/generation, no interval" if math.isfinite(mean) else "no slope"
        else:
            detail = f"{mean:+.1f}%/generation, 95% CI [{low:+.1f}, {high:+.1f}], {p_text(float(self.summary.p_value))}"
        left_out = (f"; {self.non_positive} value(s) with B_t <= 0 left out of their seed's slope"
                    if self.non_positive else "")
        return f"{self.verdict}: {detail} ({self.n_seeds} seeds x {self.n_generations} generations{left_out})"

    def needed_text(self) -> str:
        """``seeds for 80% power: 5%/generation: 14, 10%/generation: 5``."""
        parts = [f"{100 * c:g}%/generation: {'n/a' if n is None else n}" for c, n in self.needed.items()]
        return f"seeds needed for {100 * PLANNING_POWER:.0f}% power: " + ", ".join(parts)


def bias_trend(bias: np.ndarray, generations: np.ndarray) -> Trend:
    """The trend of one (seeds, generations) table of a bias measure B_t (NaN = missing)."""
    slopes = per_seed_slopes(bias, generations)
    summary = t_summary(slopes)
    kept = slopes[np.isfinite(slopes)]
    sd = float(np.std(kept, ddof=1)) if kept.size >= 2 else math.nan
    bias = np.asarray(bias, dtype=float)
    return Trend(n_seeds=int(kept.size), n_generations=len(generations), summary=summary,
                 verdict_code=int(trend_verdict(summary)),
                 needed={change: seeds_needed(sd, change) for change in PLANNING_CHANGES},
                 non_positive=int((np.isfinite(bias) & (bias <= 0)).sum()))
