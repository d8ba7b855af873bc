"""The sandbox's generators are objects chosen by name from a registry; a regime reads and writes its config."""

from __future__ import annotations

import numpy as np
import pytest

from common.errors import ConfigError
from datamodules.stack_policy import StackPolicy
from sandbox.generators import GENERATORS, RefittedGaussian, RefittedMixture, build_generator
from sandbox.loop import Regime


def test_a_generator_is_built_from_its_name_or_a_mapping_and_written_back():
    assert set(GENERATORS) == {"gaussian", "mixture"}
    assert build_generator("gaussian") == RefittedGaussian()
    assert build_generator({"name": "mixture", "components": 3}) == RefittedMixture(3)
    assert RefittedMixture(3).to_config() == {"name": "mixture", "components": 3}
    assert build_generator(RefittedMixture(3).to_config()) == RefittedMixture(3)


@pytest.mark.parametrize("spec, message", [
    ("gan", "generator must be one of ['gaussian', 'mixture']"),
    ({"name": "mixture", "k": 2}, "generator mixture has no arguments ['k']: it takes ['components']"),
    ({"name": "mixture", "components": 0}, "generator.components must be an integer >= 1, got 0"),
])
def test_a_bad_generator_says_what_to_fix(spec, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_generator(spec)


def test_a_regime_round_trips_through_its_config_and_reads_old_run_configs():
    regime = Regime("m", RefittedMixture(3), StackPolicy.named("fifo"), 0.5, 2, 100)
    written = regime.to_config()
    assert written == {"name": "m", "generator": {"name": "mixture", "components": 3}, "stack_policy": "fifo",
                       "synthetic_share": 0.5, "stack_generations": 2, "samples_per_generation": 100}
    assert Regime.from_config(written) == regime
    old = {"name": "m", "generator": "mixture", "components": 3, "stack_policy": "fifo", "synthetic_share": 0.5,
           "stack_generations": 2, "samples_per_generation": 100}  # before the registry
    assert Regime.from_config(old) == regime


def test_the_gaussian_fits_every_class_at_once_as_the_per_class_ml_fit():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [5, 7, 9])
    points = rng.standard_normal((21, 2)) + labels[:, None]
    model = RefittedGaussian().fit(points, labels, 3, rng)
    for c in range(3):
        mine = points[labels == c]
        np.testing.assert_allclose(model.means[c, 0], mine.mean(0))
        np.testing.assert_allclose(model.covariances[c, 0], np.cov(mine.T, bias=True) + 1e-6 * np.eye(2))
