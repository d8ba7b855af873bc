"""The sandbox reproduces the closed-form answers
(docs/beyond-the-paper.md#analytic-sandbox-checking-the-loop-against-theory); each test would fail under a wrong
sign, a constant, or a missing real-data mix."""

from __future__ import annotations

import numpy as np
import pytest

from sandbox import theory
from sandbox.interval_coverage import interval_coverage
from sandbox.loop import Regime, run_seed
from sandbox.world import GaussianMixtureWorld


def _blocks(world: GaussianMixtureWorld, regime: Regime, seeds: int, generations: int, key: str) -> np.ndarray:
    """(seeds, generations, classes) of a per-class block value, generations 1..T."""
    runs = [run_seed(world, regime, seed, generations, classify=False)[1] for seed in range(seeds)]
    return np.array([[blocks[str(t)][key] for t in range(1, generations + 1)] for blocks in runs])


@pytest.fixture(scope="module")
def small_world() -> GaussianMixtureWorld:
    return GaussianMixtureWorld(n_train_per_class=20, n_test_per_subgroup=1)


@pytest.fixture(scope="module")
def collapse(small_world) -> np.ndarray:
    return _blocks(small_world, Regime("g", "gaussian", 1, "replace", 1.0), 100, 10, "fitted_variance_class")


def test_replace_shrinks_the_fitted_variance_by_n_minus_1_over_n_each_generation(collapse, small_world):
    n = small_world.n_train_per_class
    steps = collapse[:, 1:] / collapse[:, :-1]  # E[v_{t+1} | v_t] = (n - 1) / n v_t
    assert steps.mean() == pytest.approx((n - 1) / n, abs=0.015)  # 0.95: growth (1.05) or none (1.0) fails
    first = small_world.first_fit_variance_ratio()
    assert first == pytest.approx(1 - 2 * 0.25 / (20 * np.trace(small_world.class_covariance(0))))
    assert collapse[:, 0].mean() == pytest.approx(first, abs=0.03)
    curve = theory.variance_ratio(n, 10, first)
    assert collapse[:, -1].mean() == pytest.approx(curve[-1], abs=0.12)  # 0.62 (1.0 without the collapse)
    assert collapse[:, -1].mean() < 0.8


def test_accumulate_keeps_the_fitted_variance_bounded(collapse, small_world):
    kept = _blocks(small_world, Regime("a", "gaussian", 1, "accumulate", 0.5), 60, 10, "fitted_variance_class")
    assert kept[:, -1].mean() > 0.93  # replace has fallen to about 0.62 by then
    assert abs(kept[:, -1].mean() - kept[:, 4].mean()) < 0.03  # flat, not decaying
    assert collapse[:, -1].mean() < kept[:, -1].mean() - 0.15


@pytest.fixture(scope="module")
def drift_world() -> GaussianMixtureWorld:
    return GaussianMixtureWorld(n_train_per_class=50, n_test_per_subgroup=1)


def test_the_minority_share_drifts_like_wright_fisher_under_replace(drift_world):
    share = _blocks(drift_world, Regime("m", "mixture", 2, "replace", 1.0), 100, 5, "minority_share_class")
    pi, n = drift_world.real_minority_share(), drift_world.n_train_per_class
    assert pi == 0.1
    expected = theory.wright_fisher_variance(pi, n, 5)[1:]  # 0.0018 ... 0.0087
    measured = share.reshape(100, 5, -1).var(0, ddof=1).mean(-1)
    np.testing.assert_allclose(measured, expected, rtol=0.3)
    assert measured[-1] > 3 * measured[0]  # it grows: a fresh binomial draw every generation would stay at 0.0018
    se = share[:, -1].std(ddof=1) / np.sqrt(share[:, -1].size)
    assert abs(share[:, -1].mean() - pi) < 4 * se  # a martingale: the mean stays at the real share


def test_mixing_the_real_data_holds_the_minority_share_near_the_real_share(drift_world):
    share = _blocks(drift_world, Regime("r", "mixture", 2, "replace", 0.5), 100, 5, "minority_share_class")
    pi, n = drift_world.real_minority_share(), drift_world.n_train_per_class
    expected = theory.share_variance(pi, n, 0.5, 5)[1:]  # levels off at about 0.0024
    measured = share.var(0, ddof=1).mean(-1)
    np.testing.assert_allclose(measured, expected, rtol=0.3)
    assert measured[-1] < 0.5 * theory.wright_fisher_variance(pi, n, 5)[-1]


def test_three_seed_intervals_cover_less_than_their_nominal_rate(collapse, small_world):
    n = small_world.n_train_per_class
    found = interval_coverage(collapse.mean(-1)[:99], (n - 1) / n, group_size=3, n_resamples=500)
    assert found.intervals == 33 * 9
    assert 0.55 < found.rate < 0.9  # the report's caveat says so (71-80% on the shipped config)
    wrong_sign = interval_coverage(collapse.mean(-1)[:99], (n + 1) / n, group_size=3, n_resamples=500)
    assert wrong_sign.rate < found.rate
    far = interval_coverage(collapse.mean(-1)[:99], 1.5, group_size=3, n_resamples=500)
    assert far.rate < 0.2


def test_interval_coverage_counts_the_intervals_that_hold_the_truth():
    exact = np.tile(0.9 ** np.arange(4), (6, 1))  # every seed the same: zero-width intervals at A_t = 0.9
    assert interval_coverage(exact, 0.9, group_size=3, n_resamples=50).rate == 1.0
    assert interval_coverage(exact, 1.0, group_size=3, n_resamples=50).rate == 0.0
    assert interval_coverage(exact, 0.9, group_size=3, n_resamples=50).intervals == 2 * 3
