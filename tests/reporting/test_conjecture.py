"""Section-5 conjecture: equation (6) fit on data generated from equation (6), bootstrap and verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reporting.amplification import bias_value, bootstrap_amplification, distinct_resamples, verdict
from reporting.conjecture import analyse_group
from reporting.conjecture_summary import conjecture_markdown, interval_text
from reporting.equation6 import fit_equation6

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
    rows, blocks = synthetic_group()
    results = {r.measure: r for r in analyse_group("g", "colored_mnist", rows, blocks)}
    fit = results["1-meo"].fit
    assert fit.n_obs == 3 * 6 and fit.terms == ["1", "1-q", "u"]
    assert fit.c0 == pytest.approx(C0, abs=1e-9)
    assert fit.c1 == pytest.approx(C1, abs=1e-9)
    assert fit.c2 == pytest.approx(C2, abs=1e-9)
    assert fit.c1_over_c0 == pytest.approx(DELTA_Q / (1 + DELTA_D))
    assert fit.rmse == pytest.approx(0.0, abs=1e-9)
    assert results["gap"].estimate.geo == pytest.approx(1.0)  # constant gap: A_t = 1


def test_noisy_fit_is_close_and_residuals_are_reported():
    rows, blocks = synthetic_group(seeds=tuple(range(10)), generations=10, noise=0.01)
    fit = {r.measure: r for r in analyse_group("g", "colored_mnist", rows, blocks)}["1-meo"].fit
    assert fit.c0 == pytest.approx(C0, abs=0.03)
    assert fit.c1 == pytest.approx(C1, abs=0.05)
    assert fit.c2 == pytest.approx(C2, abs=0.05)
    assert 0.003 < fit.rmse < 0.02
    assert fit.residuals.shape == (100,)
    assert fit.residuals.mean() == pytest.approx(0.0, abs=1e-12)  # least squares with an intercept


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
    fit = fit_equation6([1.0, 2.0], [0.1, 0.2], [0.3, 0.5])  # 2 observations, 3 terms
    assert fit.terms == ["1"] and any("rank-deficient" in n for n in fit.notes)
    fit = fit_equation6([1.0, 2.0, 1.5], [0.1, 0.2, 0.4], [0.3, 0.5, 0.2])  # 3 observations, 3 terms: exact
    assert fit.rmse == pytest.approx(0.0, abs=1e-12) and any("no residual degrees of freedom" in n for n in fit.notes)
    assert not any("degrees of freedom" in n for n in fit_equation6(a, [0.1, 0.2, 0.4], None).notes)  # 3 obs, 2 terms


@pytest.mark.parametrize(("low", "high", "expected"), [
    (1.01, 1.3, "bias amplified"), (0.5, 0.99, "bias reduced"), (0.9, 1.1, "stable"), (1.0, 1.2, "stable"),
    (None, 1.2, "undetermined"), (math.nan, math.nan, "undetermined"),
])
def test_verdict(low, high, expected):
    assert verdict(low, high) == expected


def test_bootstrap_is_seeded_and_brackets_the_point_estimate():
    rng = np.random.default_rng(0)
    bias = 0.1 * np.exp(np.arange(4) * 0.3)[None, :] * rng.uniform(0.7, 1.3, size=(5, 4))
    first, second = bootstrap_amplification(bias), bootstrap_amplification(bias)
    assert first.geo_ci == second.geo_ci
    assert first.geo_ci[0] <= first.geo <= first.geo_ci[1]
    assert np.allclose(first.a, bias.mean(0)[1:] / bias.mean(0)[:-1])
    assert np.allclose(first.b_std, bias.std(0, ddof=1))
    assert verdict(*first.geo_ci) == "bias amplified"  # growth exp(0.3) per generation dominates the noise
    flat = bootstrap_amplification(0.1 * rng.uniform(0.5, 1.5, size=(5, 4)))
    assert verdict(*flat.geo_ci) == "stable"


def test_single_seed_and_zero_bias_are_undetermined():
    rows = [{"generation": t, "classifier": "c", "seed": 0, "dataset": "colored_mnist", "meo": 1 - 0.1 * 2 ** t,
             "acc_rank": [0.5, 0.5]} for t in range(3)]
    results = {r.measure: r for r in analyse_group("g", "colored_mnist", rows, {})}
    assert results["1-meo"].estimate.geo == pytest.approx(2.0)
    assert results["1-meo"].verdict.startswith("undetermined")
    assert math.isnan(results["gap"].estimate.geo)  # B = 0: A_t undefined, not 0/0 = anything


def test_bias_value_measures():
    row = {"meo": 0.9, "meo_class": 0.8, "acc_rank": [0.4, 0.6, 0.9]}
    assert bias_value(row, "1-meo") == pytest.approx(0.1)
    assert bias_value(row, "1-meo_class") == pytest.approx(0.2)
    assert bias_value(row, "gap") == pytest.approx(0.5)
    assert bias_value({"meo": None, "acc_rank": []}, "1-meo") is None
    assert bias_value({"acc_rank": []}, "gap") is None


def test_two_seeds_give_the_percentiles_of_their_three_possible_resamples():
    """Seeds A (bias 0.1 -> 0.2, A = 2) and B (0.1 -> 0.4, A = 4): a resample is {A, A} (2), {A, B} (3) or {B, B}
    (4), so the 95% percentile interval is exactly [2, 4] and the point estimate the ratio of means, 3."""
    estimate = bootstrap_amplification(np.array([[0.1, 0.2], [0.1, 0.4]]))
    assert estimate.a[0] == pytest.approx(3.0)
    assert estimate.a_ci[0] == pytest.approx([2.0, 4.0])
    assert estimate.geo_ci == pytest.approx((2.0, 4.0))
    assert [distinct_resamples(n) for n in (1, 2, 3, 4)] == [1, 3, 10, 35]


def test_one_seed_has_no_interval_rather_than_a_zero_width_one():
    estimate = bootstrap_amplification(np.array([[0.1, 0.2, 0.4]]))
    assert estimate.a == pytest.approx([2.0, 2.0])
    assert np.isnan(estimate.a_ci).all() and all(math.isnan(v) for v in estimate.geo_ci)
    assert interval_text(0.785, 0.785, 1) == "n/a (1 seed)"
    assert interval_text(0.7, 0.9, 3) == "[0.7000, 0.9000]" and interval_text(math.nan, 1.0, 3) == "n/a"
    rows = [{"generation": t, "classifier": "c", "seed": 0, "dataset": "colored_mnist", "meo": 1 - 0.1 * 2 ** t,
             "acc_rank": [0.5, 0.7]} for t in range(3)]
    text = conjecture_markdown(analyse_group("g", "colored_mnist", rows, {}))
    assert "95% CI n/a (1 seed)" in text and "| 2.0000 | n/a (1 seed) |" in text


def test_a_seed_missing_a_generation_leaves_the_interval_defined():
    """An unfinished seed (NaN at the last generation): resamples of only that seed have no A_1 and are left out."""
    bias = np.array([[0.1, 0.2, 0.4], [0.1, 0.2, np.nan], [0.1, 0.2, 0.4]])
    estimate = bootstrap_amplification(bias)
    assert estimate.a == pytest.approx([2.0, 2.0]) and estimate.n_seeds.tolist() == [3, 3, 2]
    assert np.allclose(estimate.a_ci, 2.0)  # every seed doubles: no spread to show
