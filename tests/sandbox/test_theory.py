import numpy as np
import pytest

from sandbox import theory


def test_share_variance_is_wright_fisher_without_real_data_and_binomial_with_real_data_only():
    np.testing.assert_allclose(theory.share_variance(0.1, 50, 1.0, 6), theory.wright_fisher_variance(0.1, 50, 6))
    np.testing.assert_allclose(theory.share_variance(0.1, 50, 0.0, 3), [0, 0.0018, 0.0018, 0.0018])
    half = theory.share_variance(0.1, 50, 0.5, 200)
    assert half[-1] == pytest.approx(0.0018 / (1 - 0.25 * (1 - 1 / 50)))  # the fixed point of the recursion


def test_variance_ratio_starts_at_one_then_the_first_fit_then_shrinks():
    np.testing.assert_allclose(theory.variance_ratio(10, 3, 0.98), [1.0, 0.98, 0.98 * 0.9, 0.98 * 0.81])


def test_known_answers_are_given_only_where_a_closed_form_holds():
    world = {"n_train_per_class": 20}
    gaussian = theory.known_answers({"generator": "gaussian", "stack_policy": "replace", "synthetic_share": 1.0},
                                    world, 4)
    assert set(gaussian) == {"fitted_variance_ratio"}
    accumulate = theory.known_answers({"generator": "gaussian", "stack_policy": "accumulate",
                                       "synthetic_share": 0.5}, world, 4)
    assert accumulate == {}
    mixed = theory.known_answers({"generator": "mixture", "stack_policy": "replace", "synthetic_share": 0.5}, world, 4)
    np.testing.assert_allclose(mixed["minority_share_variance"], theory.share_variance(0.1, 20, 0.5, 4))
    subsampled = theory.known_answers({"generator": "mixture", "stack_policy": "replace", "synthetic_share": 0.25},
                                      world, 4)  # draws a third of the block: extra sampling noise, no closed form
    assert set(subsampled) == {"minority_share"}
