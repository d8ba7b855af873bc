"""Section-5 conjecture: equation (6) fitted on data generated from equation (6), the per-seed trend and its verdict,
t intervals and the seeds-needed line, each against a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from reporting.amplification import amplification_estimate, bias_value, bootstrap_amplification, distinct_resamples
from reporting.conjecture import analyse_group
from reporting.conjecture_summary import conjecture_markdown, interval_text
from reporting.equation6 import fit_equation6
from reporting.trend import (
    GROWS,
    SHRINKS,
    STABLE,
    UNDETERMINED,
    bias_trend,
    per_seed_slopes,
    seeds_needed,
    t_summary,
    trend_verdict,
)

GAMMA, DELTA_D, DELTA_Q, DELTA_U = 0.2, 0.1, 0.5, 0.3
C0, C1, C2 = (1 - GAMMA) * (1 + DELTA_D), (1 - GAMMA) * DELTA_Q, (1 - GAMMA) * DELTA_U  # 0.88, 0.4, 0.24


def synthetic_group(seeds=(0, 1, 2), generations=6, with_u=True, noise=0.0):
    """Result rows and state blocks whose 1 - MEO follows equation (6) exactly (plus optional noise on A_t)."""
    rng = np.random.default_rng(123)
    rows, blocks_by_seed = [], {}
    for seed in seeds:
        bias, blocks = 0.05 + 0.01 * seed, {}
        for t in range(generations + 1):
            rows.append({"generation": t, "classifier": "resnet50", "seed": seed, "dataset": "colored_mnist",
                         "meo": 1.0 - bias, "acc_rank": [0.6, 0.8]})
            if t == generations:
                break
            q, u = rng.uniform(0.5, 1.0), rng.uniform(0.0, 0.5)  # quality of the block generated for t+1
            blocks[t + 1] = {"quality_q": q, "imbalance_u": u if with_u else None}
            bias *= C0 + C1 * (1 - q) + (C2 * u if with_u else 0.0) + noise * rng.standard_normal()
        blocks_by_seed[seed] = blocks
    return rows, blocks_by_seed


def test_fit_recovers_equation6_constants_from_synthetic_runs():
    """One observation per transition (the ratio of seed means, covariates weighted by B_t): exact under eq. 6."""
    rows, blocks = synthetic_group()
    results = {r.measure: r for r in analyse_group("g", "colored_mnist", rows, blocks)}
    fit = results["1-meo"].fit
    assert fit.n_obs == 6 and fit.terms == ["1", "1-q", "u"] and fit.df_resid == 3
    assert fit.c0 == pytest.approx(C0, abs=1e-9)
    assert fit.c1 == pytest.approx(C1, abs=1e-9)
    assert fit.c2 == pytest.approx(C2, abs=1e-9)
    assert fit.c1_over_c0 == pytest.approx(DELTA_Q / (1 + DELTA_D))
    assert fit.rmse == pytest.approx(0.0, abs=1e-9)
    assert fit.evidence and fit.evidence_text().startswith("q_t / u_t explain A_t beyond a constant")
    assert results["gap"].estimate.a == pytest.approx([1.0] * 6)  # constant gap: A_t = 1
    assert results["gap"].verdict.startswith("stable (a change of 10%/generation either way ruled out")


def test_noisy_fit_is_close_and_its_intervals_are_narrow():
    """How often the intervals hold the constants is measured in test_calibration.py."""
    rows, blocks = synthetic_group(seeds=tuple(range(10)), generations=30, noise=0.01)
    fit = {r.measure: r for r in analyse_group("g", "colored_mnist", rows, blocks)}["1-meo"].fit
    assert fit.c0 == pytest.approx(C0, abs=0.03)
    assert fit.c1 == pytest.approx(C1, abs=0.06)
    assert fit.c2 == pytest.approx(C2, abs=0.06)
    for term in ("1", "1-q", "u"):
        low, high = fit.intervals[term]
        assert low < {"1": fit.c0, "1-q": fit.c1, "u": fit.c2}[term] < high and high - low < 0.2
    assert fit.residuals.shape == (30,)
    assert fit.residuals.mean() == pytest.approx(0.0, abs=1e-12)  # least squares with an intercept


def test_pure_noise_says_no_evidence():
    rng = np.random.default_rng(5)
    a = 1.0 + 0.1 * rng.standard_normal(12)
    fit = fit_equation6(a, rng.uniform(0, 0.5, 12), rng.uniform(0, 0.5, 12))
    assert fit.f_pvalue > 0.05 and fit.evidence is False
    assert fit.evidence_text().startswith("no evidence that q_t / u_t explain A_t (F-test against A_t = c0: p = ")
    assert "q_t interval contains 0; u_t interval contains 0" in fit.evidence_text()
    low, high = fit.intervals["1"]
    assert low < 1.0 < high


def test_u_term_is_dropped_when_unavailable():
    rows, blocks = synthetic_group(with_u=False)
    result = {r.measure: r for r in analyse_group("g", "hard_imagenet", rows, blocks)}["1-meo"]
    assert result.fit.c2 is None and result.fit.terms == ["1", "1-q"]
    assert result.fit.c0 == pytest.approx(C0) and result.fit.c1 == pytest.approx(C1)
    assert any("u_t unavailable" in note for note in result.fit.notes)
    assert all(u is None for u in result.u)


def test_direct_fit_handles_constant_and_missing_covariates():
    a = [1.1, 1.2, 1.3]
    fit = fit_equation6(a, [0.1, 0.1, 0.1], [0.0, 0.1, 0.2])
    assert fit.c1 is None and fit.terms == ["1", "u"]
    assert fit.c0 == pytest.approx(1.1) and fit.c2 == pytest.approx(1.0)
    assert "constant" in fit.notes[0]
    fit = fit_equation6(a, None, None)
    assert fit.c0 == pytest.approx(1.2) and fit.c1 is None and fit.c2 is None
    assert fit.intervals["1"] == pytest.approx((1.2 - stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3),
                                                1.2 + stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)))
    assert fit.f_pvalue is None and fit.evidence_text() == "no covariate term could be fitted: A_t = c0 only"
    fit = fit_equation6([1.0, 2.0], [0.1, 0.2], [0.3, 0.5])  # 2 observations, 3 terms
    assert fit.terms == ["1"] and any("rank-deficient" in n for n in fit.notes)
    fit = fit_equation6([1.0, 2.0, 1.5], [0.1, 0.2, 0.4], [0.3, 0.5, 0.2])  # 3 observations, 3 terms: exact
    assert fit.rmse == pytest.approx(0.0, abs=1e-12) and any("no residual degrees of freedom" in n for n in fit.notes)
    assert fit.f_pvalue is None and fit.evidence_text().startswith("cannot test whether q_t / u_t explain A_t")
    assert not any("degrees of freedom" in n for n in fit_equation6(a, [0.1, 0.2, 0.4], None).notes)  # 3 obs, 2 terms


def test_t_summary_is_the_textbook_t_interval():
    summary = t_summary(np.array([1.0, 2.0, 3.0]))
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # sd 1, 2 degrees of freedom: 4.303 / sqrt(3)
    assert (float(summary.mean), float(summary.low), float(summary.high)) == pytest.approx((2.0, 2 - half, 2 + half))
    assert float(summary.p_value) == pytest.approx(2 * stats.t.sf(2.0 / (1 / math.sqrt(3)), 2))
    ragged = t_summary(np.array([[1.0, 2.0, 3.0, np.nan], [np.nan, 5.0, np.nan, np.nan]]))
    assert ragged.low[0] == pytest.approx(2 - half) and ragged.n.tolist() == [3, 1]
    assert ragged.mean[1] == 5.0 and math.isnan(ragged.low[1]) and math.isnan(ragged.p_value[1])
    flat = t_summary(np.array([[0.3, 0.3, 0.3], [0.0, 0.0, 0.0]]))  # no spread
    assert flat.low.tolist() == [0.3, 0.0] and flat.p_value.tolist() == [0.0, 1.0]


def test_per_seed_slopes_are_least_squares_slopes_of_the_log():
    t = np.arange(5)
    values = np.stack([0.1 * np.exp(0.2 * t), 0.3 * np.exp(-0.1 * t), 0.2 * np.exp(0.05 * t)])
    assert per_seed_slopes(values, t) == pytest.approx([0.2, -0.1, 0.05])
    assert per_seed_slopes(2.0 + 3.0 * t[None], t, log=False) == pytest.approx([3.0])
    gaps = values.copy()
    gaps[0, 4], gaps[1, 1:] = np.nan, np.nan  # one missing generation; one seed with a single value
    gaps[2, 2] = 0.0  # log 0: that generation leaves the slope, the other four keep it
    slopes = per_seed_slopes(gaps, t)
    assert slopes[0] == pytest.approx(0.2) and np.isnan(slopes[1]) and slopes[2] == pytest.approx(0.05)


def test_trend_verdicts_and_texts():
    t = np.arange(4)
    wobble = np.array([[1.0, 1.01, 1.0, 0.99], [1.0, 0.99, 1.01, 1.0], [1.01, 1.0, 1.0, 1.0]])
    grows = 0.1 * np.exp(np.log(1.5) * t)[None] * np.array([[1.0], [1.1], [0.9]]) * wobble
    trend = bias_trend(grows, t)
    assert trend.verdict == "bias amplified" and trend.change[0] == pytest.approx(50.0, abs=1.0)
    assert trend.text().startswith("bias amplified: +") and "(3 seeds x 4 generations)" in trend.text()
    shrinks = bias_trend(0.1 * np.exp(-0.2 * t)[None].repeat(3, 0) * np.array([[1.0], [1.2], [0.8]]), t)
    assert shrinks.verdict == "bias reduced" and shrinks.change == pytest.approx((math.expm1(-0.2) * 100,) * 3)
    summaries = t_summary(np.array([[0.001, -0.002, 0.0005], [0.3, -0.3, 0.05], [0.2, 0.21, 0.19],
                                    [-0.2, -0.21, -0.19]]))
    assert trend_verdict(summaries).tolist() == [STABLE, UNDETERMINED, GROWS, SHRINKS]
    wide = bias_trend(0.1 * np.exp(np.array([[0.3], [-0.3], [0.05]]) * t), t)
    assert wide.verdict == "undetermined with 3 seeds"
    one = bias_trend(0.1 * np.exp(0.1 * t)[None], t)
    assert one.verdict.startswith("undetermined with 1 seed") and "no interval" in one.text()


def test_seeds_needed_is_the_smallest_count_with_80_percent_power():
    """Checked against the noncentral t distribution directly (power of the two-sided one-sample t-test)."""
    def power(n: int, effect: float) -> float:
        critical = stats.t.ppf(0.975, n - 1)
        shift = effect * math.sqrt(n)
        return stats.nct.sf(critical, n - 1, shift) + stats.nct.cdf(-critical, n - 1, shift)

    for sd, change in ((0.05, 0.05), (0.05, 0.10), (0.02, 0.05), (0.2, 0.10)):
        n = seeds_needed(sd, change)
        effect = math.log1p(change) / sd
        assert power(n, effect) >= 0.8 and (n == 2 or power(n - 1, effect) < 0.8)
    assert seeds_needed(0.05, 0.05) > seeds_needed(0.05, 0.10) > 2  # a smaller change needs more seeds
    assert seeds_needed(math.nan, 0.05) is None and seeds_needed(0.0, 0.05) == 2


def test_amplification_intervals_are_t_intervals_of_the_per_seed_log_ratios():
    """Seeds A (0.1 -> 0.2, A = 2) and B (0.1 -> 0.4, A = 4): the ratio of seed means is 3, the geometric mean of the
    seeds' A is sqrt(8), and its interval exp(mean log A +- t_1 sd / sqrt(2))."""
    estimate = amplification_estimate(np.array([[0.1, 0.2], [0.1, 0.4]]))
    assert estimate.a[0] == pytest.approx(3.0) and estimate.a_geo[0] == pytest.approx(math.sqrt(8))
    logs = np.log([2.0, 4.0])
    half = stats.t.ppf(0.975, 1) * logs.std(ddof=1) / math.sqrt(2)
    assert estimate.a_ci[0] == pytest.approx(np.exp([logs.mean() - half, logs.mean() + half]))
    assert estimate.endpoint == pytest.approx(math.sqrt(8)) and estimate.endpoint_n == 2
    assert [distinct_resamples(n) for n in (1, 2, 3, 4)] == [1, 3, 10, 35]


def test_the_sandbox_bootstrap_still_gives_the_percentiles_of_its_three_possible_resamples():
    """Kept only for the analytic sandbox's coverage column: a resample of 2 seeds is {A, A} (2), {A, B} (3) or
    {B, B} (4), so the 95% percentile interval is exactly [2, 4]."""
    estimate = bootstrap_amplification(np.array([[0.1, 0.2], [0.1, 0.4]]))
    assert estimate.a_ci[0] == pytest.approx([2.0, 4.0])


def test_one_seed_has_no_interval_rather_than_a_zero_width_one():
    estimate = amplification_estimate(np.array([[0.1, 0.2, 0.4]]))
    assert estimate.a == pytest.approx([2.0, 2.0])
    assert np.isnan(estimate.a_ci).all() and all(math.isnan(v) for v in estimate.endpoint_ci)
    assert interval_text(0.785, 0.785, 1) == "n/a (1 seed)"
    assert interval_text(0.7, 0.9, 3) == "[0.7000, 0.9000]" and interval_text(math.nan, 1.0, 3) == "n/a"
    rows = [{"generation": t, "classifier": "c", "seed": 0, "dataset": "colored_mnist", "meo": 1 - 0.1 * 2 ** t,
             "acc_rank": [0.5, 0.7]} for t in range(3)]
    text = conjecture_markdown(analyse_group("g", "colored_mnist", rows, {}))
    assert "95% CI n/a (1 seed)" in text and "| 2.0000 | n/a (1 seed) |" in text
    assert "undetermined with 1 seed" in text


def test_zero_bias_is_undetermined_not_stable():
    rows = [{"generation": t, "classifier": "c", "seed": s, "dataset": "colored_mnist", "meo": 1 - 0.1 * 2 ** t,
             "acc_rank": [0.5, 0.5]} for t in range(3) for s in range(3)]
    results = {r.measure: r for r in analyse_group("g", "colored_mnist", rows, {})}
    assert results["1-meo"].verdict == "bias amplified"
    assert math.isnan(results["gap"].estimate.a[0])  # B = 0: A_t undefined, not 0/0 = anything
    assert results["gap"].verdict.startswith("undetermined (no seed has 2 generations with B_t > 0")


def test_a_seed_missing_a_generation_leaves_the_interval_defined():
    """An unfinished seed (NaN at the last generation): it leaves A_1 and the endpoint ratio, not A_0."""
    bias = np.array([[0.1, 0.2, 0.4], [0.1, 0.2, np.nan], [0.1, 0.2, 0.4]])
    estimate = amplification_estimate(bias)
    assert estimate.a == pytest.approx([2.0, 2.0]) and estimate.n_seeds.tolist() == [3, 3, 2]
    assert estimate.a_n.tolist() == [3, 2] and estimate.endpoint_n == 2
    assert np.allclose(estimate.a_ci, 2.0)  # every seed doubles: no spread to show
    assert bias_trend(bias, np.arange(3)).n_seeds == 3  # the unfinished seed's slope uses its 2 generations


def test_bias_value_measures():
    row = {"meo": 0.9, "meo_class": 0.8, "acc_rank": [0.4, 0.6, 0.9]}
    assert bias_value(row, "1-meo") == pytest.approx(0.1)
    assert bias_value(row, "1-meo_class") == pytest.approx(0.2)
    assert bias_value(row, "gap") == pytest.approx(0.5)
    assert bias_value({"meo": None, "acc_rank": []}, "1-meo") is None
    assert bias_value({"acc_rank": []}, "gap") is None


def test_the_verdict_reads_every_generation_the_endpoint_ratio_only_two():
    """A run whose bias rises 1 -> 3 over five generations and is back at its start in the last one: the endpoint
    ratio reads 1, the trend over all generations reads the rise (the old geometric mean of the ratio of seed
    means telescoped to (B_T / B_0)^(1/T) = 1 and said stable)."""
    t = np.arange(6)
    path = np.array([1.0, 1.5, 2.0, 2.5, 3.0, 1.0])
    bias = 0.1 * path[None] * np.array([[1.0], [1.1], [0.9], [1.05]]) * np.exp(
        0.01 * np.random.default_rng(0).standard_normal((4, 6)))
    estimate = amplification_estimate(bias)
    assert float(estimate.endpoint) == pytest.approx(1.0, abs=0.02)
    trend = bias_trend(bias, t)
    slope = np.polyfit(t, np.log(path), 1)[0]  # least squares slope of the noise-free log path
    assert float(trend.summary.mean) == pytest.approx(slope, abs=0.01) and slope > 0.05
    assert trend.verdict == "bias amplified"


def test_a_seed_whose_bias_touches_zero_keeps_the_slope_of_its_other_generations():
    """log B_t is undefined at B_t = 0: that generation leaves its seed's slope, not the whole seed (the seeds whose
    bias falls fastest reach 0 first; dropping them would pull the verdict towards "amplified")."""
    from reporting.trend import bias_trend, per_seed_slopes

    generations = np.arange(6)
    bias = 0.2 * np.array([[1.0] * 6, [0.95 ** t for t in range(6)], [0.9 ** t for t in range(5)] + [0.0]])
    slopes = per_seed_slopes(bias, generations)
    assert slopes == pytest.approx([0.0, math.log(0.95), math.log(0.9)])
    trend = bias_trend(bias, generations)
    assert trend.n_seeds == 3 and trend.non_positive == 1
    assert "(3 seeds x 6 generations; 1 value(s) with B_t <= 0 left out of their seed's slope)" in trend.text()


def test_stable_needs_the_interval_inside_plus_minus_the_band_on_both_sides():
    from reporting.trend import STABLE, UNDETERMINED, TSummary, trend_verdict

    def verdict(low: float, high: float) -> int:
        return int(trend_verdict(TSummary(np.array(0.0), np.array(math.log1p(low)), np.array(math.log1p(high)),
                                          np.array(0.5), np.array(0.1), np.array(3))))

    assert verdict(-0.095, 0.095) == STABLE
    assert verdict(-0.099, 0.05) == STABLE  # -9.9% is inside -10% (log(0.9) is -10%, not -9.1%)
    assert verdict(-0.105, 0.05) == UNDETERMINED and verdict(-0.05, 0.105) == UNDETERMINED
