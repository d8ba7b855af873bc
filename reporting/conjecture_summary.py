"""The conjecture's analysis as the report shows it: the summary.md section and conjecture.csv."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from scipy import stats

from records.layout import RESULTS_FILE
from reporting.amplification import MEASURE_DESCRIPTIONS
from reporting.conjecture import ClassifierConjecture
from reporting.trend import PLANNING_CHANGES, PLANNING_POWER, STABLE_BAND

INTERVAL_NOTE = (
    "Intervals are over seeds only (the seed is the unit of replication; generations within a seed are not "
    "independent): 95% t intervals on k - 1 degrees of freedom over one number per seed (`scipy.stats.ttest_1samp`). "
    f"Per-sample test predictions are not stored in {RESULTS_FILE}, so test-set sampling noise within a seed enters "
    "only through the spread between seeds. One seed has no interval (n/a).")

VERDICT_NOTE = (
    "Verdict: each seed's least-squares slope of log B_t on the generation t over every generation it has, then a "
    "one-sample t-test of the slopes across seeds. **bias amplified** / **bias reduced**: the mean slope differs "
    "from 0 at the 5% level; the change per generation is exp(mean slope) - 1 with its 95% interval. **stable**: "
    "not significant and the interval rules out a change of "
    f"{100 * STABLE_BAND:.0f}%/generation either way. **undetermined with k seeds**: neither (too few seeds for the "
    "spread between them). The endpoint ratio B_T / B_0 (first to last generation, geometric mean of the seeds' "
    "ratios with its t interval) is a separate number: it reads only the two endpoint generations. "
    f"Seeds needed: how many seeds a two-sided t-test at 5% needs for {100 * PLANNING_POWER:.0f}% power to detect "
    + " or ".join(f"{100 * c:g}%" for c in PLANNING_CHANGES) + " change per generation, given this run's spread of "
    "per-seed slopes over its own number of generations (`statsmodels` TTestPower).")

TRANSITION_NOTE = (
    "Per transition: A_t = B_{t+1} / B_t as the ratio of seed means (defined where a seed has B_t = 0; the "
    "equation-(6) fit uses it), and the geometric mean of the seeds' own A_t with its 95% t interval "
    "(t interval of log(B_{s,t+1} / B_{s,t}) over seeds, back-transformed).")

EQUATION6_NOTE = (
    "Equation (6) per classifier: A_t = c0 + c1 (1 - q_t) + c2 u_t with c0 = (1 - gamma_M)(1 + delta_D), "
    "c1 = (1 - gamma_M) delta_Q, c2 = (1 - gamma_M) delta_U. gamma_M and delta_D enter only through c0, so they are "
    "not separately identifiable; the identifiable combinations are c0, c1, c2 and c1/c0 = delta_Q / (1 + delta_D), "
    "c2/c0 = delta_U / (1 + delta_D). One observation per transition: A_t as the ratio of seed means and q_t, u_t as "
    "their B_t-weighted means over the seeds (under equation (6) this A_t's expectation is exactly linear in those "
    "means, so the fit is unbiased; per-seed ratios would inflate c0 by about CV^2 out of pure noise). Ordinary "
    "least squares (`statsmodels`) with 95% t intervals on n - p degrees of freedom; the F-test compares the fit "
    "with the intercept-only model A_t = c0, and \"no evidence\" is said where it does not reject at 5%. q_t and "
    "u_t come from the block generated for generation t+1 (the data that moves the classifier from generation t to "
    "t+1); the u term is dropped where u_t is unavailable (e.g. Hard ImageNet).")

U_T_NOTE = ("q_t = share of the raw generated block that the generation-0 reference classifier assigns to the "
            "requested class. u_t = within each class, the total-variation distance between the block's subgroup "
            "distribution and the real training data's, averaged over classes weighted by block counts (0 = the "
            "real per-class subgroup mix; unsigned: the state's majority_gain says whether the generator "
            "over-produces (+) or evens out (-) each class's majority subgroup).")

CSV_COLUMNS = (
    "record", "group", "dataset", "classifier", "measure", "t", "b_t", "b_t_std", "b_next", "a_t", "a_geo",
    "a_ci_low", "a_ci_high", "n_seeds", "q_t", "u_t", "a_fitted", "residual", "verdict", "change_pct_per_generation",
    "change_ci_low", "change_ci_high", "trend_p_value", *(f"seeds_needed_{100 * c:g}pct" for c in PLANNING_CHANGES),
    "endpoint_ratio", "endpoint_ci_low", "endpoint_ci_high", "c0", "c0_ci_low", "c0_ci_high", "c1", "c1_ci_low",
    "c1_ci_high", "c2", "c2_ci_low", "c2_ci_high", "c1_over_c0", "c2_over_c0", "f_pvalue", "equation6_conclusion",
    "n_obs", "rank", "rmse", "terms", "note",
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


def seeds_note(n_seeds: int) -> str | None:
    """Said where few seeds limit what the intervals can tell."""
    if n_seeds < 2:
        return (f"{n_seeds} seed: no interval (n/a) and no verdict; run 3 or more seeds (`scripts/sweep.py`) before "
                "reading anything into A_t.")
    if n_seeds < 5:
        return (f"{n_seeds} seeds: t intervals on {n_seeds - 1} degrees of freedom hold their 95% level but are wide "
                "(the critical value is " + f"{_T_CRITICAL[n_seeds]:.2f} standard errors); a trend the seeds cannot "
                "resolve is reported as undetermined, not stable. The seeds-needed line of each verdict says how many "
                "would resolve a 5% or 10% change per generation.")
    return None


#: two-sided 95% t critical values on k - 1 degrees of freedom, for the few-seeds note
_T_CRITICAL = {k: float(stats.t.ppf(0.975, k - 1)) for k in range(2, 5)}


def _with_interval(value: float | None, interval: tuple[float, float] | None) -> str:
    if interval is None:
        return _fmt(value)
    return f"{_fmt(value)} [{_fmt(interval[0])}, {_fmt(interval[1])}]"


def _endpoint_text(r: ClassifierConjecture) -> str:
    est = r.estimate
    first, last = r.generations[0], r.generations[-1]
    return (f"endpoint ratio B_{last}/B_{first} = {_fmt(float(est.endpoint))}, 95% CI "
            f"{interval_text(float(est.endpoint_ci[0]), float(est.endpoint_ci[1]), int(est.endpoint_n))}")


def conjecture_markdown(results: list[ClassifierConjecture]) -> str:
    """The "Bias amplification (section 5 conjecture)" section of summary.md."""
    lines = ["## Bias amplification (section 5 conjecture)", ""]
    lines += [
        "Bias B_t is measured two ways: " + "; ".join(f"`{k}` = {v}" for k, v in MEASURE_DESCRIPTIONS.items()) + ".",
        "", VERDICT_NOTE, "", INTERVAL_NOTE, "", TRANSITION_NOTE, "", EQUATION6_NOTE, "", U_T_NOTE, "",
    ]
    if not results:
        return "\n".join([*lines, "No group has two or more generations with a bias value: nothing to measure.", ""])
    for group in dict.fromkeys(r.group for r in results):
        own = [r for r in results if r.group == group]
        n_seeds = len(own[0].seeds)
        lines += [f"### {group} ({own[0].dataset})", ""]
        note = seeds_note(n_seeds)
        if note:
            lines += [note, ""]
        lines += ["Verdicts (trend of log B_t over every generation):", ""]
        for r in own:
            lines.append(f"- **{r.classifier}** (`{r.measure}`): {r.trend.text()}; {_endpoint_text(r)}; "
                         f"{r.trend.needed_text()}")
        lines += ["", "| classifier | measure | t -> t+1 | B_t | B_t+1 | A_t (ratio of seed means) | "
                      "geometric mean of seeds' A_t | 95% t CI | q_t | u_t | fitted A_t | residual |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in own:
            est = r.estimate
            for k, t in enumerate(r.generations[:-1]):
                interval = interval_text(est.a_ci[k, 0], est.a_ci[k, 1], int(est.a_n[k]))
                lines.append(
                    f"| {r.classifier} | {r.measure} | {t} -> {r.generations[k + 1]} | {_fmt(est.b_mean[k])} | "
                    f"{_fmt(est.b_mean[k + 1])} | {_fmt(est.a[k])} | {_fmt(est.a_geo[k])} | {interval} | "
                    f"{_fmt(r.q[k])} | {_fmt(r.u[k])} | {_fmt(r.fitted_by_t[k])} | {_fmt(r.residual_by_t[k])} |"
                )
        lines += ["", "Equation (6) fit (95% t intervals in brackets):", "",
                  "| classifier | measure | c0 | c1 | c2 | c1/c0 | c2/c0 | transitions | RMSE | F-test p vs A_t = c0 | "
                  "conclusion | notes |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in own:
            f = r.fit
            lines.append(f"| {r.classifier} | {r.measure} | {_with_interval(f.c0, f.intervals.get('1'))} | "
                         f"{_with_interval(f.c1, f.intervals.get('1-q'))} | "
                         f"{_with_interval(f.c2, f.intervals.get('u'))} | {_fmt(f.c1_over_c0)} | "
                         f"{_fmt(f.c2_over_c0)} | {f.n_obs} | {_fmt(f.rmse)} | {_fmt(f.f_pvalue)} | "
                         f"{f.evidence_text()} | {'; '.join(f.notes) or '-'} |")
        lines.append("")
    return "\n".join(lines)


def conjecture_rows(results: list[ClassifierConjecture]) -> list[dict]:
    """Long-format rows: one ``transition`` row per (classifier, measure, t) and one ``fit`` row per
    (classifier, measure) with the trend verdict, the endpoint ratio and the equation-(6) fit."""
    out: list[dict] = []
    for r in results:
        base = {"group": r.group, "dataset": r.dataset, "classifier": r.classifier, "measure": r.measure}
        est = r.estimate
        for k, t in enumerate(r.generations[:-1]):
            out.append({**base, "record": "transition", "t": t, "b_t": est.b_mean[k], "b_t_std": est.b_std[k],
                        "b_next": est.b_mean[k + 1], "a_t": est.a[k], "a_geo": est.a_geo[k],
                        "a_ci_low": est.a_ci[k, 0], "a_ci_high": est.a_ci[k, 1], "n_seeds": int(est.a_n[k]),
                        "q_t": r.q[k], "u_t": r.u[k], "a_fitted": r.fitted_by_t[k], "residual": r.residual_by_t[k]})
        f, trend = r.fit, r.trend
        change, change_low, change_high = trend.change
        intervals = {term: f.intervals.get(term, (None, None)) for term in ("1", "1-q", "u")}
        out.append({**base, "record": "fit", "n_seeds": trend.n_seeds, "verdict": r.verdict,
                    "change_pct_per_generation": change, "change_ci_low": change_low, "change_ci_high": change_high,
                    "trend_p_value": float(trend.summary.p_value),
                    **{f"seeds_needed_{100 * c:g}pct": n for c, n in trend.needed.items()},
                    "endpoint_ratio": float(est.endpoint), "endpoint_ci_low": float(est.endpoint_ci[0]),
                    "endpoint_ci_high": float(est.endpoint_ci[1]), "c0": f.c0, "c0_ci_low": intervals["1"][0],
                    "c0_ci_high": intervals["1"][1], "c1": f.c1, "c1_ci_low": intervals["1-q"][0],
                    "c1_ci_high": intervals["1-q"][1], "c2": f.c2, "c2_ci_low": intervals["u"][0],
                    "c2_ci_high": intervals["u"][1], "c1_over_c0": f.c1_over_c0, "c2_over_c0": f.c2_over_c0,
                    "f_pvalue": f.f_pvalue, "equation6_conclusion": f.evidence_text(), "n_obs": f.n_obs,
                    "rank": f.rank, "rmse": f.rmse, "terms": " + ".join(f.terms),
                    "note": "; ".join([*f.notes, "A_t and endpoint intervals: t over seeds; c0, c1, c2: OLS t over "
                                                    "transitions, conditional on the seeds run"])})
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
