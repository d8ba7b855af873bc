import numpy as np
import pytest
from scipy import stats
from scipy.special import digamma

from datamodules.stack_policy import StackPolicy
from sandbox import theory
from sandbox.generators import RefittedGaussian, RefittedMixture
from sandbox.loop import Regime
from sandbox.world import GaussianMixtureWorld


def test_share_variance_is_wright_fisher_without_real_data_and_binomial_with_real_data_only():
    np.testing.assert_allclose(theory.share_variance(0.1, 50, 1.0, 6), theory.wright_fisher_variance(0.1, 50, 6))
    np.testing.assert_allclose(theory.share_variance(0.1, 50, 0.0, 3), [0, 0.0018, 0.0018, 0.0018])
    half = theory.share_variance(0.1, 50, 0.5, 200)
    assert half[-1] == pytest.approx(0.0018 / (1 - 0.25 * (1 - 1 / 50)))  # the fixed point of the recursion


def test_variance_ratio_starts_at_one_then_the_first_fit_then_shrinks():
    np.testing.assert_allclose(theory.variance_ratio(10, 3, 0.98), [1.0, 0.98, 0.98 * 0.9, 0.98 * 0.81])


def test_the_accumulate_product_is_0_9614_on_the_shipped_world_at_n_20_t_10():
    first = GaussianMixtureWorld(n_train_per_class=20).first_fit_variance_ratio()
    assert first == pytest.approx(0.98833, abs=1e-5)
    curve = theory.accumulate_variance_ratio(20, 10, first)
    assert curve[-1] == pytest.approx(0.9614, abs=5e-5) and curve[0] == 1.0 and curve[1] == first
    assert np.all(np.diff(curve[1:]) < 0)  # it declines every generation, not "stays at 0.98"
    np.testing.assert_allclose(theory.accumulate_variance_ratio(4, 3, 0.75),
                               [1.0, 0.75, 0.75 * (1 - 1 / 16), 0.75 * (1 - 1 / 16) * (1 - 1 / 36)])


def test_the_log_variance_drift_is_the_mean_log_of_a_scaled_chi_square():
    """E ln(χ²_{n-1} / n) by numerical integration, an independent route to ψ((n-1)/2) - ln(n/2)."""
    for n in (4, 20):
        integral = stats.chi2(n - 1).expect(lambda x, n=n: np.log(x / n))
        assert theory.log_variance_drift(n) == pytest.approx(integral, abs=1e-6)
    assert theory.log_variance_drift(20) == pytest.approx(-0.10485, abs=1e-5)
    # d dimensions (ln det of a Wishart(n - 1) / n): the sum of psi((n - i) / 2) over i = 1..d
    assert theory.log_variance_drift(20, 2) == pytest.approx(digamma(9.5) + digamma(9) - 2 * np.log(10))


def _regime(generator, policy: str, share: float) -> Regime:
    return Regime("r", generator, StackPolicy.named(policy), share)


def test_known_answers_are_given_only_where_a_closed_form_holds():
    world = GaussianMixtureWorld(n_train_per_class=20)
    gaussian = theory.known_answers(_regime(RefittedGaussian(), "replace", 1.0), world, 4)
    assert set(gaussian) == {"fitted_variance_ratio"}
    accumulate = theory.known_answers(_regime(RefittedGaussian(), "accumulate", 0.5), world, 4)
    np.testing.assert_allclose(accumulate["fitted_variance_ratio"],
                               theory.accumulate_variance_ratio(20, 4, world.first_fit_variance_ratio()))
    assert theory.known_answers(_regime(RefittedGaussian(), "replace", 0.5), world, 4) == {}  # real + newest only
    assert theory.known_answers(_regime(RefittedGaussian(), "accumulate", 1.0), world, 4) == {}  # no real data
    mixed = theory.known_answers(_regime(RefittedMixture(2), "replace", 0.5), world, 4)
    np.testing.assert_allclose(mixed["minority_share_variance"], theory.share_variance(0.1, 20, 0.5, 4))
    assert "fitted_variance_ratio" not in mixed  # the mixture's runs do not measure it
    subsampled = theory.known_answers(_regime(RefittedMixture(2), "replace", 0.25), world, 4)
    assert set(subsampled) == {"minority_share"}  # draws a third of the block: extra sampling noise, no closed form
