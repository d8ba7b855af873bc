"""The paper's section-5 conjecture, measured for one group of runs: per (classifier, bias measure), the
amplification A_t = B_{t+1} / B_t across generations (``reporting.amplification``) and the fit of equation (6)
(``reporting.equation6``) on the blocks' q_t and u_t; ``reporting.conjecture_summary`` writes it out.

Equation (6) says B_{t+1} = (1 - gamma_M) (1 + delta_D + delta_Q (1 - q_t) + delta_U u_t) B_t, so A_t is linear in
(1 - q_t) and u_t. Indexing: A_t moves the classifier from generation t to t+1; the data that does it is the block
generated for generation t+1, so q_t / u_t are read from that block (state.json ``blocks[t+1]``, else the
generation-(t+1) rows).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from reporting.amplification import (
    AmplificationEstimate,
    bias_value,
    bootstrap_amplification,
    finite_or_none,
    measures_for,
    verdict,
)
from reporting.equation6 import Equation6Fit, fit_equation6


@dataclass
class ClassifierConjecture:
    group: str
    dataset: str
    classifier: str
    measure: str
    seeds: list[int]
    generations: list[int]
    estimate: AmplificationEstimate
    q: list[float | None]  # per transition, mean over seeds
    u: list[float | None]
    fit: Equation6Fit
    fitted_by_t: list[float | None]  # mean fitted A over the seeds' observations of each transition
    residual_by_t: list[float | None]

    @property
    def verdict(self) -> str:
        if len(self.seeds) < 2:
            return "undetermined (needs >= 2 seeds for an interval)"
        if not math.isfinite(self.estimate.geo):
            return "undetermined (B_t is 0 or missing at some generation, so A_t is undefined)"
        return verdict(*self.estimate.geo_ci)


def _block_value(blocks: dict, rows_by_gen: dict, generation: int, key: str) -> float | None:
    block = blocks.get(generation) or blocks.get(str(generation)) or {}
    value = finite_or_none(block.get(key))
    if value is None:
        for row in rows_by_gen.get(generation, []):
            value = finite_or_none(row.get(key))
            if value is not None:
                break
    return value


def _mean_or_none(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


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
        consecutive = [g for g in generations if g + 1 in generations]
        for measure in measures_for(reading):
            bias = np.full((len(seeds), len(generations)), np.nan)
            for r in own:
                value = bias_value(r, measure)
                if value is not None:
                    bias[seeds.index(int(r["seed"])), generations.index(int(r["generation"]))] = value
            if not np.isfinite(bias).any():
                continue
            estimate = bootstrap_amplification(bias)
            obs_a, obs_q, obs_u, obs_t = [], [], [], []
            q_by_t, u_by_t = [], []
            for t in generations[:-1]:
                qs, us = [], []
                for s_index, seed in enumerate(seeds):
                    blocks = blocks_by_seed.get(seed, {})
                    q = _block_value(blocks, rows_by_seed_gen.get(seed, {}), t + 1, "quality_q")
                    u_value = _block_value(blocks, rows_by_seed_gen.get(seed, {}), t + 1, "imbalance_u")
                    qs.append(q)
                    us.append(u_value)
                    if t not in consecutive:
                        continue
                    b_t, b_next = bias[s_index, generations.index(t)], bias[s_index, generations.index(t + 1)]
                    if np.isfinite(b_t) and np.isfinite(b_next) and b_t > 0:
                        obs_a.append(b_next / b_t)
                        obs_q.append(None if q is None else 1.0 - q)
                        obs_u.append(u_value)
                        obs_t.append(t)
                q_by_t.append(_mean_or_none(qs))
                u_by_t.append(_mean_or_none(us))
            fit = fit_equation6(obs_a, obs_q, obs_u)
            skipped = len(seeds) * len(consecutive) - len(obs_a)
            if skipped:
                fit.notes.append(f"{skipped} seed transitions skipped (B_t missing or 0, so A_t is undefined)")
            fitted_by_t, residual_by_t = [], []
            for t in generations[:-1]:
                mask = [k for k, tt in enumerate(obs_t) if tt == t]
                fitted_by_t.append(float(np.mean(fit.fitted[mask])) if mask and fit.c0 is not None else None)
                residual_by_t.append(float(np.mean(fit.residuals[mask])) if mask and fit.c0 is not None else None)
            results.append(ClassifierConjecture(
                group=group, dataset=dataset, classifier=classifier, measure=measure, seeds=seeds,
                generations=generations, estimate=estimate, q=q_by_t, u=u_by_t, fit=fit, fitted_by_t=fitted_by_t,
                residual_by_t=residual_by_t,
            ))
    return results
