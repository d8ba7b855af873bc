"""Every closed form of sandbox/closed_forms.py at a known value, and against a direct simulation where it is a
statistical claim (numpy, seeded, the standard error computed from the replicate count)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sandbox import closed_forms as cf


def test_the_odds_map_multiplies_the_odds_by_the_keep_rate_ratio():
    kept = cf.odds_map(0.2, (0.5, 1.0))  # odds 1:4 times 2 = 1:2
    assert kept == pytest.approx(1 / 3)
    assert cf.odds_map(0.2, (1.0, 0.5)) == pytest.approx(1 / 9)  # the other way round: 1:8
    assert cf.pure_replacement_share(0.2, (0.5, 1.0), 3) == pytest.approx(2 / 3)  # odds 1:4 * 8 = 2:1


def test_pure_replacement_is_the_recursion_at_p_1_and_window_1():
    recursion = cf.filtered_share_trajectory(0.3, (1.0, 0.6), 5, n_real=100, n_block=400, share=1.0, window=1)
    assert recursion == pytest.approx([cf.pure_replacement_share(0.3, (1.0, 0.6), t) for t in range(1, 6)])


@pytest.mark.parametrize("share, rates", [(0.5, (0.5, 1.0)), (0.75, (1.0, 0.6)), (0.3, (0.8, 1.0))])
def test_replace_converges_to_its_fixed_point(share, rates):
    trajectory = cf.filtered_share_trajectory(0.3, rates, 60, n_real=700, n_block=10**6, share=share, window=1)
    fixed = cf.replace_fixed_point(0.3, rates, share)
    assert trajectory[-1] == pytest.approx(fixed, abs=1e-9)
    m = (1 - share) * 0.3 + share * fixed  # pi* = g(m*): the derivation in the docstring
    assert cf.odds_map(m, rates) == pytest.approx(fixed)
    assert 0.3 != pytest.approx(fixed, abs=0.01)  # the filter moved it


def test_an_unbiased_filter_keeps_the_real_share():
    assert cf.replace_fixed_point(0.3, (0.7, 0.7), 0.5) == pytest.approx(0.3)
    assert cf.filtered_share_trajectory(0.3, (0.7, 0.7), 4, 100, 200, None, None) == pytest.approx([0.3] * 4)


def test_share_variance_is_wright_fisher_under_pure_replacement():
    assert cf.share_variance(0.3, 6, 20, 20, 1.0, 1) == pytest.approx(
        [cf.wright_fisher_variance(0.3, 20, t) for t in range(1, 7)])
    assert cf.wright_fisher_variance(0.5, 2, 1) == pytest.approx(0.125)  # 0.25 (1 - 1/2)


@pytest.mark.parametrize("share, window", [(1.0, 2), (1.0, 3), (None, None), (0.5, 1)])
def test_share_variance_matches_a_direct_simulation(share, window):
    """Binomial sampling from the regime's training set, 40,000 replicates: within 4 standard errors."""
    rng = np.random.default_rng(1)
    pi0, n, generations, replicates = 0.3, 10, 4, 40_000
    blocks: list[np.ndarray] = []
    for _ in range(generations):
        kept = blocks if window is None else blocks[-window:]
        real = 0 if share is not None and share >= 1 and kept else n
        synthetic = n * len(kept)
        counts = real * pi0 + sum(b * n for b in kept) if kept else np.full(replicates, real * pi0)
        m = counts / (real + synthetic)
        blocks.append(rng.binomial(n, m) / n)
    squares = (blocks[-1] - pi0) ** 2
    error = 4 * squares.std() / math.sqrt(replicates)
    assert squares.mean() == pytest.approx(cf.share_variance(pi0, generations, n, n, share, window)[-1], abs=error)


def test_the_variance_ratios_at_known_values():
    assert cf.replace_variance_ratio(20, 10) == pytest.approx(0.95**9)
    assert cf.replace_variance_ratio(20, 1) == 1.0
    assert cf.accumulate_variance_ratio(20, 10) == pytest.approx(0.97279, abs=1e-5)
    assert cf.accumulate_variance_ratio(20, 2) == pytest.approx(1 - 1 / 80)


@pytest.mark.parametrize("regime", ["replace", "accumulate"])
def test_the_variance_ratios_match_a_direct_simulation(regime):
    """ML Gaussians refitted on their predecessor's n samples (replace) or on everything so far (accumulate)."""
    rng = np.random.default_rng(2)
    n, generations, replicates = 10, 5, 100_000
    data = rng.standard_normal((replicates, n))
    fitted = []
    for _ in range(generations):
        mean, variance = data.mean(axis=1), data.var(axis=1)
        fitted.append(variance)
        block = mean[:, None] + np.sqrt(variance)[:, None] * rng.standard_normal((replicates, n))
        data = block if regime == "replace" else np.concatenate([data, block], axis=1)
    ratio = fitted[-1].mean() / fitted[0].mean()
    error = 4 * (fitted[-1] - ratio * fitted[0]).std() / fitted[0].mean() / math.sqrt(replicates)
    formula = cf.replace_variance_ratio if regime == "replace" else cf.accumulate_variance_ratio
    assert ratio == pytest.approx(formula(n, generations), abs=error)


def test_the_log_variance_drift_matches_a_direct_simulation():
    rng = np.random.default_rng(3)
    n, replicates = 20, 200_000
    steps = np.log(rng.chisquare(n - 1, replicates) / n)  # ln(Sigma_t / Sigma_(t-1)) under replace
    error = 4 * steps.std() / math.sqrt(replicates)
    assert steps.mean() == pytest.approx(cf.log_variance_drift(n), abs=error)
    assert cf.log_variance_drift(20) == pytest.approx(-0.104847, abs=1e-6)
    assert cf.log_variance_drift(20) < math.log(19 / 20)  # the log drifts faster than the variance


def test_fresh_data_with_equal_weights_settles_at_two_thirds():
    assert cf.fresh_mean_error(1.0, 20, 20, 1) == pytest.approx(1 / 20)  # real data alone: sigma^2 / n
    assert cf.fresh_stationary_error(1.0, 20, 20) == pytest.approx(2 / 3 / 20)
    assert cf.fresh_mean_error(1.0, 20, 20, 40) == pytest.approx(2 / 3 / 20)
    assert cf.fresh_mean_error(1.0, 20, 20, 2) == pytest.approx((0.25 + 0.25 * 2) / 20)


def test_fresh_mean_error_matches_a_direct_simulation():
    rng = np.random.default_rng(4)
    n_r, n_s, replicates, generations = 8, 4, 200_000, 6
    mean = rng.standard_normal((replicates, n_r)).mean(axis=1)
    for _ in range(generations - 1):
        real = rng.standard_normal((replicates, n_r)).sum(axis=1)
        synthetic = (mean[:, None] + rng.standard_normal((replicates, n_s))).sum(axis=1)
        mean = (real + synthetic) / (n_r + n_s)
    squares = mean**2
    error = 4 * squares.std() / math.sqrt(replicates)
    assert squares.mean() == pytest.approx(cf.fresh_mean_error(1.0, n_r, n_s, generations), abs=error)
