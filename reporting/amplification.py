"""Bias B_t of a result row and its amplification A_t = B_{t+1} / B_t across generations, with t intervals over
seeds.

Results rows hold metrics, not per-sample test predictions, so intervals are over seeds only (the seed is the unit of
replication). A_t's interval is the t interval (k - 1 degrees of freedom) of the per-seed log ratios
log(B_{s,t+1} / B_{s,t}), back-transformed: an interval for the geometric mean of the seeds' A_t, which holds its
level at 3 seeds (``tests/reporting/test_calibration.py``). The point A_t of the tables is the ratio of seed means
(defined even where one seed's B_t is 0); the endpoint ratio B_T / B_0 is reported the same way as A_t.

``bootstrap_amplification`` (percentile bootstrap over seeds) is kept only to measure, on runs whose true A_t is
known, how badly it covers at few seeds: n seeds allow only C(2n - 1, n) distinct resamples (3: 10).
"""

from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from reporting.trend import t_summary

N_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CI_LEVEL = 0.95
# measure name -> how it is read from a result row; CIFAR-20/100 uses the per-class MEO ("subgroup i" is a different
# fine class in every superclass)
MEASURE_DESCRIPTIONS = {
    "1-meo": "1 - MEO (eq. 2), subgroups pooled over classes",
    "1-meo_class": "1 - MEO computed within each class, averaged over classes",
    "1-meo_cells": "1 - MEO over every (class, subgroup) cell as a group (datasets whose subgroup i differs by class)",
    "gap": "worst-to-best subgroup gap acc_rank[-1] - acc_rank[0] (eq. 5)",
}


def finite_or_none(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


#: the MEO of each fairness reading, as a bias measure
READING_MEASURES = {"pooled": "1-meo", "per_class": "1-meo_class", "cells": "1-meo_cells"}


def measures_for(reading: str = "pooled") -> tuple[str, str]:
    """The two bias measures B_t for a dataset: 1 - MEO in the fairness reading its card leads with (cells where
    subgroup i means a different thing in every class), and the subgroup gap."""
    return (READING_MEASURES[reading], "gap")


def bias_value(row: dict, measure: str) -> float | None:
    """B_t of one result row under ``measure`` (None when the row lacks the metric)."""
    if measure in READING_MEASURES.values():
        meo = finite_or_none(row.get(measure[2:]))
        return None if meo is None else 1.0 - meo
    if measure == "gap":
        ranks = [finite_or_none(v) for v in row.get("acc_rank") or []]
        if len(ranks) < 2 or ranks[0] is None or ranks[-1] is None:
            return None
        return ranks[-1] - ranks[0]
    raise ValueError(f"unknown bias measure {measure!r}: one of {sorted(MEASURE_DESCRIPTIONS)}")


def _amplification(means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A_t per transition, geometric mean of A_t) from mean bias per generation; last axis = generation."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a = means[..., 1:] / means[..., :-1]
        valid = np.isfinite(a) & (a > 0)
        log_a = np.where(valid, np.log(np.where(valid, a, 1.0)), np.nan)
        geo = np.exp(log_a.mean(axis=-1))  # nan as soon as one transition is undefined
    a = np.where(np.isfinite(a), a, np.nan)
    return a, geo


@dataclass
class BootstrapEstimate:
    """Point estimates (ratio of seed means) and bootstrap percentile intervals (NaN with fewer than 2 seeds)."""

    b_mean: np.ndarray  # (generations,)
    b_std: np.ndarray  # (generations,) sample std, ddof=1
    n_seeds: np.ndarray  # (generations,) seeds with a value
    a: np.ndarray  # (generations - 1,)
    a_ci: np.ndarray  # (generations - 1, 2)
    geo: float
    geo_ci: tuple[float, float]


def distinct_resamples(n_seeds: int) -> int:
    """How many different multisets a bootstrap over ``n_seeds`` seeds can draw: C(2n - 1, n) (3 seeds: 10)."""
    return math.comb(2 * n_seeds - 1, n_seeds) if n_seeds > 0 else 0


def _amplification_statistic(*columns: np.ndarray, axis: int = -1) -> np.ndarray:
    """[A_0, ..., A_{T-1}, geometric mean] from the per-generation bias columns of (resampled) seeds.

    scipy passes each generation's column with the seeds on ``axis`` (-1) and any batch of resamples before it.
    """
    bias = np.stack([np.moveaxis(c, axis, -1) for c in columns], axis=-1)  # (..., seeds, generations)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample whose generation has no value: NaN
        means = np.nanmean(bias, axis=-2)
    a, geo = _amplification(means)
    return np.concatenate([np.moveaxis(a, -1, 0), np.asarray(geo)[None]], axis=0)


def _seeded(seed: int) -> dict:
    """scipy >= 1.15 takes ``rng``; older releases ``random_state``."""
    name = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
    return {name: np.random.default_rng(seed)}


def bootstrap_amplification(bias: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                            level: float = CI_LEVEL) -> BootstrapEstimate:
    """``bias`` is (seeds, generations) with NaN for missing values; A_t = mean_s B_{s,t+1} / mean_s B_{s,t}.

    Ratio of means rather than mean of per-seed ratios: it stays defined when one seed has B_t close to 0. The
    interval is scipy's percentile bootstrap with the seeds resampled jointly for every generation; resamples in
    which some A_t is undefined (a seed without that generation drawn alone) are left out of that A_t's interval.
    """
    bias = np.asarray(bias, dtype=float)
    n, generations = bias.shape
    counts = np.isfinite(bias).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        b_mean = np.where(counts > 0, np.nansum(bias, axis=0) / np.maximum(counts, 1), np.nan)
        sq = np.nansum((bias - b_mean) ** 2, axis=0)
        b_std = np.where(counts > 1, np.sqrt(sq / np.maximum(counts - 1, 1)), np.nan)
    a, geo = _amplification(b_mean)
    intervals = np.full((generations, 2), np.nan)  # rows: A_0 .. A_{T-1}, geometric mean
    if n >= 2 and generations >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # degenerate resamples (equal seeds) are expected with few seeds
            result = stats.bootstrap(tuple(bias.T), _amplification_statistic, paired=True, vectorized=True,
                                     n_resamples=n_resamples, confidence_level=level, method="percentile",
                                     **_seeded(seed))
        intervals[:, 0], intervals[:, 1] = result.confidence_interval.low, result.confidence_interval.high
        tail = 100 * (1 - level) / 2
        for k, point in enumerate([*a, geo]):
            draws = result.bootstrap_distribution[k]
            if not math.isfinite(point):
                intervals[k] = np.nan
            elif not np.isfinite(intervals[k]).all() and np.isfinite(draws).any():
                intervals[k] = np.percentile(draws[np.isfinite(draws)], [tail, 100 - tail])
    return BootstrapEstimate(b_mean=b_mean, b_std=b_std, n_seeds=counts, a=a, a_ci=intervals[:-1],
                                 geo=float(geo), geo_ci=(float(intervals[-1, 0]), float(intervals[-1, 1])))


def _log_ratios(later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """log(later / earlier) where both are finite and > 0, else NaN."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = np.isfinite(later) & np.isfinite(earlier) & (later > 0) & (earlier > 0)
        return np.where(ok, np.log(np.where(ok, later, 1.0)) - np.log(np.where(ok, earlier, 1.0)), np.nan)


@dataclass
class AmplificationEstimate:
    """Per generation: seed mean and sd of B_t; per transition: A_t as the ratio of seed means, and the geometric
    mean of the per-seed A_t with its t interval; the endpoint ratio B_T / B_0 (first to last generation) likewise.
    Intervals are NaN with fewer than 2 seeds that have both values."""

    b_mean: np.ndarray  # (generations,)
    b_std: np.ndarray  # (generations,) sample std, ddof=1
    n_seeds: np.ndarray  # (generations,) seeds with a value
    a: np.ndarray  # (generations - 1,) ratio of seed means
    a_geo: np.ndarray  # (generations - 1,) geometric mean of per-seed A_t
    a_ci: np.ndarray  # (generations - 1, 2) t interval of a_geo
    a_n: np.ndarray  # (generations - 1,) seeds with both B_t and B_t+1 > 0
    endpoint: float
    endpoint_ci: tuple[float, float]
    endpoint_n: int


def amplification_estimate(bias: np.ndarray, level: float = CI_LEVEL) -> AmplificationEstimate:
    """``bias`` is (..., seeds, generations) with NaN for missing values (the calibration test passes a batch of
    simulated experiments; the report one (seeds, generations) table)."""
    bias = np.asarray(bias, dtype=float)
    counts = np.isfinite(bias).sum(axis=-2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a generation without any value: NaN
        b_mean = np.nanmean(bias, axis=-2)
        b_std = np.where(counts > 1, np.nanstd(bias, axis=-2, ddof=1), np.nan)
    a, _ = _amplification(b_mean)
    per_transition = t_summary(np.swapaxes(_log_ratios(bias[..., 1:], bias[..., :-1]), -1, -2), level)
    endpoint = t_summary(_log_ratios(bias[..., -1], bias[..., 0]), level)
    return AmplificationEstimate(
        b_mean=b_mean, b_std=b_std, n_seeds=counts, a=a, a_geo=np.exp(per_transition.mean),
        a_ci=np.exp(np.stack([per_transition.low, per_transition.high], axis=-1)), a_n=per_transition.n,
        endpoint=np.exp(endpoint.mean), endpoint_ci=(np.exp(endpoint.low), np.exp(endpoint.high)),
        endpoint_n=endpoint.n)
