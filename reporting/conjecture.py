"""The paper's section-5 conjecture, measured: bias B_t, amplification A_t = B_{t+1} / B_t and equation (6).

Equation (6) says B_{t+1} = (1 - gamma_M) (1 + delta_D + delta_Q (1 - q_t) + delta_U u_t) B_t, so the amplification
factor A_t is linear in (1 - q_t) and u_t:

    A_t = c0 + c1 (1 - q_t) + c2 u_t,   c0 = (1 - gamma_M)(1 + delta_D),  c1 = (1 - gamma_M) delta_Q,
                                          c2 = (1 - gamma_M) delta_U.

gamma_M and delta_D only ever appear through c0 (one model and one dataset per fit), so they are not separately
identifiable: we report the identifiable combinations c0, c1, c2 and the ratios c1/c0 = delta_Q / (1 + delta_D),
c2/c0 = delta_U / (1 + delta_D).

Indexing: A_t moves the classifier from generation t to t+1; the data that does it is the block generated for
generation t+1, so q_t / u_t are read from that block (state.json ``blocks[t+1]``, else the generation-(t+1) rows).

Uncertainty: results rows hold metrics, not per-sample test predictions, so confidence intervals come from a
bootstrap over seeds only (``scipy.stats.bootstrap``, seeds resampled with replacement, the same resample for every
generation). One seed has no interval ("n/a (1 seed)", never a zero-width one); n seeds allow only C(2n - 1, n)
distinct resamples (3 seeds: 10), which the summary says.
"""

from __future__ import annotations

import csv
import inspect
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from reporting.readings import leading_reading
from simulation.results import READING_METRICS

N_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CI_LEVEL = 0.95
BOOTSTRAP_NOTE = ("Confidence intervals: percentile bootstrap over seeds only (`scipy.stats.bootstrap`, seeds "
                  f"resampled with replacement, {N_RESAMPLES} resamples, numpy seed {BOOTSTRAP_SEED}); per-sample test "
                  "predictions are not stored in results.jsonl, so test-set sampling noise within a seed is not "
                  "included. One seed has no interval (n/a).")

U_T_NOTE = ("q_t = share of the raw generated block that the generation-0 reference classifier assigns to the "
            "requested class. u_t = within each class, the total-variation distance between the block's subgroup "
            "distribution and the real training data's, averaged over classes weighted by block counts (0 = the "
            "real per-class subgroup mix; unsigned: the state's majority_gain says whether the generator "
            "over-produces (+) or evens out (-) each class's majority subgroup).")

# measure name -> how it is read from a result row; each dataset uses the MEO of its leading fairness reading (cells
# for CIFAR-20/100 and Living-17, where "subgroup i" is a different fine class in every superclass)
MEASURE_DESCRIPTIONS = {
    "1-meo": "1 - MEO (eq. 2), subgroups pooled over classes",
    "1-meo_class": "1 - MEO computed within each class, averaged over classes",
    "1-meo_cells": "1 - MEO over every (class, subgroup) cell as a group (CIFAR-20/100, BREEDS Living-17)",
    "gap": "worst-to-best subgroup gap acc_rank[-1] - acc_rank[0] (eq. 5)",
}

CSV_COLUMNS = (
    "record", "group", "dataset", "classifier", "measure", "t", "b_t", "b_t_std", "b_next", "a_t", "a_ci_low",
    "a_ci_high", "n_seeds", "q_t", "u_t", "a_fitted", "residual", "geo_mean_a", "geo_ci_low", "geo_ci_high",
    "verdict", "c0", "c1", "c2", "c1_over_c0", "c2_over_c0", "n_obs", "rank", "rmse", "terms", "note",
)


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def measures_for(dataset: str) -> tuple[str, str]:
    """The two bias measures B_t for a dataset: 1 - MEO in its leading fairness reading, and the subgroup gap."""
    return ("1-" + READING_METRICS[leading_reading(dataset)][0], "gap")


def bias_value(row: dict, measure: str) -> float | None:
    """B_t of one result row under ``measure`` (None when the row lacks the metric)."""
    if measure in ("1-meo", "1-meo_class", "1-meo_cells"):
        meo = _finite(row.get(measure[2:]))
        return None if meo is None else 1.0 - meo
    if measure == "gap":
        ranks = [_finite(v) for v in row.get("acc_rank") or []]
        if len(ranks) < 2 or ranks[0] is None or ranks[-1] is None:
            return None
        return ranks[-1] - ranks[0]
    raise ValueError(f"unknown bias measure {measure!r}: one of {sorted(MEASURE_DESCRIPTIONS)}")


def verdict(ci_low: float | None, ci_high: float | None) -> str:
    """Plain-language reading of the geometric-mean A_t interval."""
    if ci_low is None or ci_high is None or not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return "undetermined"
    if ci_low > 1.0:
        return "bias amplified"
    if ci_high < 1.0:
        return "bias reduced"
    return "stable"


# ============================================================================================ bootstrap
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
class AmplificationEstimate:
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
                            level: float = CI_LEVEL) -> AmplificationEstimate:
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
    return AmplificationEstimate(b_mean=b_mean, b_std=b_std, n_seeds=counts, a=a, a_ci=intervals[:-1],
                                 geo=float(geo), geo_ci=(float(intervals[-1, 0]), float(intervals[-1, 1])))


# ============================================================================================ equation (6)
@dataclass
class Equation6Fit:
    """Least-squares fit of A_t = c0 + c1 (1 - q_t) + c2 u_t; c1/c2 are None when their term was dropped."""

    c0: float | None
    c1: float | None
    c2: float | None
    n_obs: int
    rank: int
    rmse: float | None
    terms: list[str]
    fitted: np.ndarray
    residuals: np.ndarray
    notes: list[str] = field(default_factory=list)

    def predict(self, one_minus_q: float | None, u: float | None) -> float | None:
        if self.c0 is None:
            return None
        value = self.c0
        for coef, x in ((self.c1, one_minus_q), (self.c2, u)):
            if coef is not None:
                if x is None:
                    return None
                value += coef * x
        return value

    @property
    def c1_over_c0(self) -> float | None:
        return self.c1 / self.c0 if self.c1 is not None and self.c0 else None

    @property
    def c2_over_c0(self) -> float | None:
        return self.c2 / self.c0 if self.c2 is not None and self.c0 else None


def fit_equation6(a: Sequence[float], one_minus_q: Sequence[float | None] | None,
                  u: Sequence[float | None] | None) -> Equation6Fit:
    """Linear regression of A_t on [1, (1 - q_t), u_t] with numpy.linalg.lstsq.

    A term is dropped (and the note says why) when its covariate is missing for any observation, or when it does
    not vary across observations (then it is indistinguishable from the intercept).
    """
    a = np.asarray(a, dtype=float)
    n = a.shape[0]
    notes: list[str] = []
    columns: dict[str, np.ndarray] = {}
    for name, values, label in (("1-q", one_minus_q, "q_t"), ("u", u, "u_t")):
        if values is None or any(v is None for v in values) or len(values) != n:
            notes.append(f"{label} term dropped: {label} unavailable" + ("" if values is None or all(
                v is None for v in values) else " for some transitions"))
            continue
        x = np.asarray(values, dtype=float)
        if n > 1 and np.ptp(x) < 1e-12:
            notes.append(f"{label} term dropped: {label} is constant across transitions (not separable from c0)")
            continue
        columns[name] = x
    if n == 0:
        return Equation6Fit(None, None, None, 0, 0, None, [], np.zeros(0), np.zeros(0),
                            [*notes, "no transitions with a defined A_t"])
    design = np.column_stack([np.ones(n), *columns.values()])
    coef, _, rank, _ = np.linalg.lstsq(design, a, rcond=None)
    terms = ["1", *columns]
    if rank < design.shape[1]:
        notes.append(f"rank-deficient design ({n} observations, {design.shape[1]} terms, rank {rank}): "
                     "covariate constants not identifiable; intercept-only fit shown")
        design = design[:, :1]
        coef, _, rank, _ = np.linalg.lstsq(design, a, rcond=None)
        terms = ["1"]
        columns = {}
    if n == design.shape[1] and n > 1:
        notes.append(f"as many observations as terms ({n}): the fit passes through every point (no residual degrees "
                     "of freedom), so its constants and RMSE say nothing; run more seeds or generations")
    fitted = design @ coef
    residuals = a - fitted
    values = dict(zip(terms, coef.tolist()))
    return Equation6Fit(c0=values["1"], c1=values.get("1-q"), c2=values.get("u"), n_obs=n, rank=int(rank),
                        rmse=float(np.sqrt(np.mean(residuals ** 2))), terms=terms, fitted=fitted,
                        residuals=residuals, notes=notes)


# ============================================================================================ per group
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
    value = _finite(block.get(key))
    if value is None:
        for row in rows_by_gen.get(generation, []):
            value = _finite(row.get(key))
            if value is not None:
                break
    return value


def _mean_or_none(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def analyse_group(group: str, dataset: str, rows: list[dict], blocks_by_seed: dict[int, dict]) -> list[
        ClassifierConjecture]:
    """Every (classifier, measure) of one group; ``rows`` are all result rows of the group's runs (any seed)."""
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
        for measure in measures_for(dataset):
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


# ============================================================================================ output
def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if abs(value) < 0.5 * 10 ** -digits:
        value = 0.0  # no "-0.0000" for a residual of -1e-17
    return f"{value:.{digits}f}"


def interval_text(low: float | None, high: float | None, n_seeds: int) -> str:
    """``[low, high]``; ``n/a (1 seed)`` where one seed cannot give an interval (never a zero-width one)."""
    if n_seeds < 2:
        return f"n/a ({n_seeds} seed{'s' if n_seeds != 1 else ''})"
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    return f"[{_fmt(low)}, {_fmt(high)}]"


def resample_note(n_seeds: int) -> str | None:
    """Said where few seeds make the bootstrap coarse: its intervals can only take a handful of values."""
    distinct = distinct_resamples(n_seeds)
    if n_seeds < 2:
        return (f"{n_seeds} seed: no bootstrap interval (n/a) and no verdict; run 3 or more seeds "
                "(`scripts/sweep.py`) before reading anything into A_t.")
    if distinct < N_RESAMPLES:
        return (f"{n_seeds} seeds: the bootstrap can draw only {distinct} distinct resamples of the seeds (of its "
                f"{N_RESAMPLES} draws), so its intervals are coarse; more seeds make them meaningful.")
    return None


def conjecture_markdown(results: list[ClassifierConjecture]) -> str:
    """The "Bias amplification (section 5 conjecture)" section of summary.md."""
    lines = ["## Bias amplification (section 5 conjecture)", ""]
    lines += [
        "Bias B_t is measured two ways: " + "; ".join(f"`{k}` = {v}" for k, v in MEASURE_DESCRIPTIONS.items())
        + ". A_t = B_{t+1} / B_t with B averaged over seeds (ratio of seed means). The verdict reads the 95% "
        "interval of the geometric mean of A_t over all transitions: above 1 = bias amplified, below 1 = bias "
        "reduced, otherwise stable.",
        "",
        BOOTSTRAP_NOTE,
        "",
        "Equation (6) fit per classifier, by least squares over every (seed, transition): A_t = c0 + c1 (1 - q_t) "
        "+ c2 u_t with c0 = (1 - gamma_M)(1 + delta_D), c1 = (1 - gamma_M) delta_Q, c2 = (1 - gamma_M) delta_U. "
        "gamma_M and delta_D enter only through c0, so they are not separately identifiable; the identifiable "
        "combinations are c0, c1, c2 and c1/c0 = delta_Q / (1 + delta_D), c2/c0 = delta_U / (1 + delta_D). "
        "q_t and u_t come from the block generated for generation t+1 (the data that moves the classifier from "
        "generation t to t+1); the u term is dropped where u_t is unavailable (e.g. Hard ImageNet).",
        "",
        U_T_NOTE,
        "",
    ]
    if not results:
        return "\n".join([*lines, "No group has two or more generations with a bias value: nothing to measure.", ""])
    for group in dict.fromkeys(r.group for r in results):
        own = [r for r in results if r.group == group]
        n_seeds = len(own[0].seeds)
        lines += [f"### {group} ({own[0].dataset})", ""]
        note = resample_note(n_seeds)
        if note:
            lines += [note, ""]
        lines += ["Verdicts:", ""]
        for r in own:
            lines.append(f"- **{r.classifier}** (`{r.measure}`): {r.verdict}: geometric-mean A = {_fmt(r.estimate.geo)}"
                         f", 95% CI {interval_text(*r.estimate.geo_ci, len(r.seeds))}, over "
                         f"{len(r.generations) - 1} transitions, {len(r.seeds)} seed{'s' if len(r.seeds) != 1 else ''}")
        lines += ["", "| classifier | measure | t -> t+1 | B_t | B_t+1 | A_t | 95% CI | q_t | u_t | fitted A_t | "
                      "residual |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in own:
            est = r.estimate
            for k, t in enumerate(r.generations[:-1]):
                interval = interval_text(est.a_ci[k, 0], est.a_ci[k, 1], int(min(est.n_seeds[k:k + 2])))
                lines.append(
                    f"| {r.classifier} | {r.measure} | {t} -> {r.generations[k + 1]} | {_fmt(est.b_mean[k])} | "
                    f"{_fmt(est.b_mean[k + 1])} | {_fmt(est.a[k])} | {interval} | {_fmt(r.q[k])} | {_fmt(r.u[k])} | "
                    f"{_fmt(r.fitted_by_t[k])} | {_fmt(r.residual_by_t[k])} |"
                )
        lines += ["", "| classifier | measure | c0 | c1 | c2 | c1/c0 | c2/c0 | observations | RMSE | notes |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in own:
            f = r.fit
            lines.append(f"| {r.classifier} | {r.measure} | {_fmt(f.c0)} | {_fmt(f.c1)} | {_fmt(f.c2)} | "
                         f"{_fmt(f.c1_over_c0)} | {_fmt(f.c2_over_c0)} | {f.n_obs} | {_fmt(f.rmse)} | "
                         f"{'; '.join(f.notes) or '-'} |")
        lines.append("")
    return "\n".join(lines)


def conjecture_rows(results: list[ClassifierConjecture]) -> list[dict]:
    """Long-format rows: one ``transition`` row per (classifier, measure, t) and one ``fit`` row per fit."""
    out: list[dict] = []
    for r in results:
        base = {"group": r.group, "dataset": r.dataset, "classifier": r.classifier, "measure": r.measure}
        est = r.estimate
        for k, t in enumerate(r.generations[:-1]):
            out.append({**base, "record": "transition", "t": t, "b_t": est.b_mean[k], "b_t_std": est.b_std[k],
                        "b_next": est.b_mean[k + 1], "a_t": est.a[k], "a_ci_low": est.a_ci[k, 0],
                        "a_ci_high": est.a_ci[k, 1], "n_seeds": int(min(est.n_seeds[k], est.n_seeds[k + 1])),
                        "q_t": r.q[k], "u_t": r.u[k], "a_fitted": r.fitted_by_t[k], "residual": r.residual_by_t[k]})
        f = r.fit
        out.append({**base, "record": "fit", "n_seeds": len(r.seeds), "geo_mean_a": est.geo,
                    "geo_ci_low": est.geo_ci[0], "geo_ci_high": est.geo_ci[1], "verdict": r.verdict, "c0": f.c0,
                    "c1": f.c1, "c2": f.c2, "c1_over_c0": f.c1_over_c0, "c2_over_c0": f.c2_over_c0,
                    "n_obs": f.n_obs, "rank": f.rank, "rmse": f.rmse, "terms": " + ".join(f.terms),
                    "note": "; ".join([*f.notes, "bootstrap over seeds only"])})
    return out


def write_conjecture_csv(results: list[ClassifierConjecture], path: str | Path) -> None:
    def cell(value):
        if value is None:
            return ""
        if isinstance(value, (float, np.floating)):
            return "" if not math.isfinite(float(value)) else repr(float(value))
        return value

    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS))
        writer.writeheader()
        for row in conjecture_rows(results):
            writer.writerow({k: cell(row.get(k)) for k in CSV_COLUMNS})
