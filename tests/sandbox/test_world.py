import numpy as np
import pytest

from common.errors import ConfigError
from datamodules.base import LabelledSplit, RealDataSource
from sandbox.world import GaussianMixtureWorld


def test_the_world_states_its_facts_and_draws_exact_subgroup_counts():
    world = GaussianMixtureWorld(n_train_per_class=30, n_test_per_subgroup=7)
    assert not isinstance(world, RealDataSource) and world.name == "gaussian_mixture"
    assert not hasattr(world, "image_shape") and not hasattr(world, "load")  # no imitation of an image dataset
    assert world.class_names == ["class_0", "class_1"] and world.group_names == ["majority", "minority"]
    assert world.minority == 1 and world.real_minority_share() == 0.1
    np.testing.assert_array_equal(world.train_counts(), [[27, 3], [27, 3]])
    splits = world.splits(seed=4)
    train, test = splits["train"], splits["test"]
    assert train.points.shape == (60, 2) and not isinstance(train, LabelledSplit)
    assert int(((train.labels == 1) & (train.groups == 1)).sum()) == 3
    assert len(test) == 28 and int((test.groups == 1).sum()) == 14
    again = world.splits(seed=4)["train"]
    assert bool((again.points == train.points).all())
    assert not bool((world.splits(seed=5)["train"].points == train.points).all())


def test_the_oracle_reads_the_component_and_the_true_covariance_matches_a_large_sample():
    world = GaussianMixtureWorld()
    rng = np.random.default_rng(0)
    counts = np.array([[90_000, 10_000], [90_000, 10_000]])
    split = world.draw(counts, rng)
    read = world.subgroups_of(split.points.numpy(), split.labels.numpy())
    assert (read == split.groups.numpy()).mean() > 0.9999
    class_one = split.points.numpy()[split.labels.numpy() == 1]
    np.testing.assert_allclose(np.cov(class_one.T), world.class_covariance(1), atol=0.03)
    assert np.trace(world.class_covariance(1)) == pytest.approx(2 * 0.25 + 0.09 * (1.5 ** 2 + 4 ** 2))


def test_the_first_fit_variance_ratio_is_the_mean_of_stratified_ml_fits():
    world = GaussianMixtureWorld(n_train_per_class=10)
    rng = np.random.default_rng(1)
    traces = []
    for _ in range(4000):
        points = world.draw(world.train_counts()[:1], rng).points.numpy()
        traces.append(np.trace(np.cov(points.T, bias=True)))
    ratio = np.mean(traces) / np.trace(world.class_covariance(0))
    assert ratio == pytest.approx(world.first_fit_variance_ratio(), abs=0.006)
    assert world.first_fit_variance_ratio() > 0.9 + 0.05  # not the i.i.d. (n - 1) / n = 0.9


@pytest.mark.parametrize("arguments, message", [
    ({"subgroup_shares": (0.5, 0.6)}, "summing to 1"),
    ({"spread": 0}, "spread must be > 0"),
    ({"means": [[0.0, 1.0]]}, "(classes >= 2, subgroups, dim)"),
])
def test_bad_world_arguments_say_what_to_fix(arguments, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        GaussianMixtureWorld(**arguments)
