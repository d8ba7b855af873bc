"""The conjecture's analysis as the report shows it: the summary.md section and conjecture.csv."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from reporting.amplification import BOOTSTRAP_SEED, MEASURE_DESCRIPTIONS, N_RESAMPLES, distinct_resamples
from reporting.conjecture import ClassifierConjecture

BOOTSTRAP_NOTE = ("Confidence intervals: percentile bootstrap over seeds only (`scipy.stats.bootstrap`, seeds "
                  f"resampled with replacement, {N_RESAMPLES} resamples, numpy seed {BOOTSTRAP_SEED}); per-sample test "
                  "predictions are not stored in results.jsonl, so test-set sampling noise within a seed is not "
                  "included. One seed has no interval (n/a).")

U_T_NOTE = ("q_t = share of the raw generated block that the generation-0 reference classifier assigns to the "
            "requested class. u_t = within each class, the total-variation distance between the block's subgroup "
            "distribution and the real training data's, averaged over classes weighted by block counts (0 = the "
            "real per-class subgroup mix; unsigned: the state's majority_gain says whether the generator "
            "over-produces (+) or evens out (-) each class's majority subgroup).")

CSV_COLUMNS = (
    "record", "group", "dataset", "classifier", "measure", "t", "b_t", "b_t_std", "b_next", "a_t", "a_ci_low",
    "a_ci_high", "n_seeds", "q_t", "u_t", "a_fitted", "residual", "geo_mean_a", "geo_ci_low", "geo_ci_high",
    "verdict", "c0", "c1", "c2", "c1_over_c0", "c2_over_c0", "n_obs", "rank", "rmse", "terms", "note",
)


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


#: how often 95% intervals contained the true A_t on the analytic sandbox's 100 seeds (configs/sandbox/
#: gaussian_mixture.yaml, groups of consecutive seeds; reporting/interval_coverage.py, README "Analytic sandbox")
MEASURED_COVERAGE = ("3 seeds covered it in 71-80% of cases, from 5 seeds 81-89%, from 10 seeds 89-97% "
                     "(README, Analytic sandbox)")


def resample_note(n_seeds: int) -> str | None:
    """Said where few seeds make the bootstrap coarse: its intervals can only take a handful of values."""
    distinct = distinct_resamples(n_seeds)
    if n_seeds < 2:
        return (f"{n_seeds} seed: no bootstrap interval (n/a) and no verdict; run 3 or more seeds "
                "(`scripts/sweep.py`) before reading anything into A_t.")
    coverage = (f" They are also too narrow: where the truth is known (the analytic sandbox), 95% intervals from "
                f"{MEASURED_COVERAGE}." if n_seeds < 10 else "")
    if distinct < N_RESAMPLES:
        return (f"{n_seeds} seeds: the bootstrap can draw only {distinct} distinct resamples of the seeds (of its "
                f"{N_RESAMPLES} draws), so its intervals are coarse; more seeds make them meaningful.{coverage}")
    return coverage.strip() or None


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
