"""The paper's section-5 conjecture, measured for one group of runs: per (classifier, bias measure), the trend of
B_t over every generation and its verdict (``reporting.trend``), the amplification A_t = B_{t+1} / B_t of each
transition and the endpoint ratio B_T / B_0 (``reporting.amplification``), and the fit of equation (6)
(``reporting.equation6``) on the blocks' q_t and u_t; ``reporting.conjecture_summary`` writes it out.

Equation (6) says B_{t+1} = (1 - gamma_M) (1 + delta_D + delta_Q (1 - q_t) + delta_U u_t) B_t, so A_t is linear in
(1 - q_t) and u_t. Indexing: A_t moves the classifier from generation t to t+1; the data that does it is the block
generated for generation t+1, so q_t / u_t are read from that block (state.json ``blocks[t+1]``, else the
generation-(t+1) rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reporting.amplification import (
    AmplificationEstimate,
    amplification_estimate,
    bias_value,
    finite_or_none,
    measures_for,
)
from reporting.equation6 import Equation6Fit, fit_equation6
from reporting.trend import Trend, bias_trend


@dataclass
class ClassifierConjecture:
    group: str
    dataset: str
    classifier: str
    measure: str
    seeds: list[int]
    generations: list[int]
    estimate: AmplificationEstimate
    trend: Trend
    q: list[float | None]  # per transition, B_t-weighted mean over seeds (the eq. 6 covariate)
    u: list[float | None]
    fit: Equation6Fit
    fitted_by_t: list[float | None]  # fitted A_t of each transition (None where it was not in the fit)
    residual_by_t: list[float | None]

    @property
    def verdict(self) -> str:
        return self.trend.verdict


def _block_value(blocks: dict, rows_by_gen: dict, generation: int, key: str) -> float | None:
    block = blocks.get(generation) or blocks.get(str(generation)) or {}
    value = finite_or_none(block.get(key))
    if value is None:
        for row in rows_by_gen.get(generation, []):
            value = finite_or_none(row.get(key))
            if value is not None:
                break
    return value


def _weighted(values: list[float | None], weights: np.ndarray) -> float | None:
    """The weighted mean of one transition's per-seed covariates; None when a seed in the fit lacks it."""
    if not values or any(v is None for v in values):
        return None
    return float(np.average(np.asarray(values, dtype=float), weights=weights))


def equation6_inputs(bias: np.ndarray, covariates: dict[str, list[list[float | None]]],
                     transitions: list[int]) -> tuple[list[float], dict[str, list[float | None]], list[int]]:
    """(A_t, {covariate: per-transition value}, transition indices) for ``fit_equation6``: per transition k of
    ``transitions`` (indices into bias's generation axis), the ratio of seed means over the seeds with B_t > 0 and
    B_t+1 both present, and each covariate's B_t-weighted mean over those seeds (``covariates[name][k][s]``)."""
    a_obs: list[float] = []
    x_obs: dict[str, list[float | None]] = {name: [] for name in covariates}
    kept: list[int] = []
    for k in transitions:
        before, after = bias[:, k], bias[:, k + 1]
        seeds = np.flatnonzero(np.isfinite(before) & np.isfinite(after) & (before > 0))
        if seeds.size == 0 or before[seeds].sum() <= 0:
            continue
        weights = before[seeds]
        a_obs.append(float(after[seeds].sum() / weights.sum()))
        for name, per_seed in covariates.items():
            x_obs[name].append(_weighted([per_seed[k][s] for s in seeds], weights))
        kept.append(k)
    return a_obs, x_obs, kept


def analyse_group(group: str, dataset: str, rows: list[dict], blocks_by_seed: dict[int, dict],
                  reading: str = "pooled") -> list[ClassifierConjecture]:
    """Every (classifier, measure) of one group; ``rows`` are all result rows of the group's runs (any seed);
    ``reading``: the fairness reading the dataset's card leads with (``DatasetFacts.fairness_reading``)."""
    results: list[ClassifierConjecture] = []
    seeds = sorted({int(r["seed"]) for r in rows})
    classifiers = list(dict.fromkeys(r["classifier"] for r in rows))
    rows_by_seed_gen: dict[int, dict[int, list[dict]]] = {}
    for r in rows:
        rows_by_seed_gen.setdefault(int(r["seed"]), {}).setdefault(int(r["generation"]), []).append(r)
    for classifier in classifiers:
        own = [r for r in rows if r["classifier"] == classifier]
        generations = sorted({int(r["generation"]) for r in own})
        if len(generations) < 2:
            continue
        consecutive = [k for k, g in enumerate(generations[:-1]) if generations[k + 1] == g + 1]
        covariates: dict[str, list[list[float | None]]] = {"1-q": [], "u": []}
        for t in generations[:-1]:
            per_seed_q, per_seed_u = [], []
            for seed in seeds:
                blocks, seed_rows = blocks_by_seed.get(seed, {}), rows_by_seed_gen.get(seed, {})
                q = _block_value(blocks, seed_rows, t + 1, "quality_q")
                per_seed_q.append(None if q is None else 1.0 - q)
                per_seed_u.append(_block_value(blocks, seed_rows, t + 1, "imbalance_u"))
            covariates["1-q"].append(per_seed_q)
            covariates["u"].append(per_seed_u)
        for measure in measures_for(reading):
            bias = np.full((len(seeds), len(generations)), np.nan)
            for r in own:
                value = bias_value(r, measure)
                if value is not None:
                    bias[seeds.index(int(r["seed"])), generations.index(int(r["generation"]))] = value
            if not np.isfinite(bias).any():
                continue
            a_obs, x_obs, kept = equation6_inputs(bias, covariates, consecutive)
            untested = (None if len(seeds) >= 2 else "1 seed: no interval and no test (one seed's transitions are "
                        "one realisation of the run's data; run >= 2 seeds)")
            fit = fit_equation6(a_obs, x_obs["1-q"], x_obs["u"], untested=untested)
            skipped = len(consecutive) - len(kept)
            if skipped:
                fit.notes.append(f"{skipped} transitions skipped (B_t missing or 0 in every seed, so A_t is "
                                 "undefined)")
            fitted_by_t: list[float | None] = [None] * (len(generations) - 1)
            residual_by_t: list[float | None] = [None] * (len(generations) - 1)
            if fit.c0 is not None:
                for index, k in enumerate(kept):
                    fitted_by_t[k], residual_by_t[k] = float(fit.fitted[index]), float(fit.residuals[index])
            q_by_t = [None] * (len(generations) - 1)
            u_by_t = [None] * (len(generations) - 1)
            for index, k in enumerate(kept):
                q_by_t[k] = None if x_obs["1-q"][index] is None else 1.0 - x_obs["1-q"][index]
                u_by_t[k] = x_obs["u"][index]
            results.append(ClassifierConjecture(
                group=group, dataset=dataset, classifier=classifier, measure=measure, seeds=seeds,
                generations=generations, estimate=amplification_estimate(bias),
                trend=bias_trend(bias, np.asarray(generations)), q=q_by_t, u=u_by_t, fit=fit,
                fitted_by_t=fitted_by_t, residual_by_t=residual_by_t,
            ))
    return results
