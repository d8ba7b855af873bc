import numpy as np
import pytest

from datamodules.stack_policy import StackPolicy
from sandbox.generators import RefittedMixture, fit_gaussian, fit_mixture
from sandbox.loop import Block, Regime, Stack, block_labels, mix, run_seed
from sandbox.world import GaussianMixtureWorld


def _stack(policy: str, blocks: int, size: int = 40) -> Stack:
    stack = Stack(StackPolicy.named(policy), window=3)
    for g in range(1, blocks + 1):
        stack.push(Block(g, np.full((size, 2), float(g)), np.arange(size) % 2))
    return stack


def test_the_mix_follows_the_image_loops_rule_and_p_1_drops_the_real_data():
    real = GaussianMixtureWorld(n_train_per_class=20).splits(0)["train"]
    rng = np.random.default_rng(0)
    assert mix(real, _stack("fifo", 0), 0.5, rng)[2:] == (40, 0)
    _, _, n_real, n_syn = mix(real, _stack("fifo", 5), 0.5, rng)
    assert (n_real, n_syn) == (40, 40)  # round(p / (1 - p) 40) of the 120 stacked
    points, _, n_real, n_syn = mix(real, _stack("replace", 5), 1.0, rng)
    assert (n_real, n_syn) == (0, 40) and set(points[:, 0]) == {5.0}  # only the newest block
    assert mix(real, _stack("accumulate", 5), 0.2, rng)[2:] == (40, 200)  # everything, whatever p
    assert _stack("fifo", 5).generations == [3, 4, 5]


def test_block_labels_follow_the_real_class_counts():
    world = GaussianMixtureWorld(n_train_per_class=20)
    assert np.bincount(block_labels(world, 40)).tolist() == [20, 20]
    assert np.bincount(block_labels(world, 41)).tolist() == [21, 20]


def test_the_generators_recover_the_worlds_parameters():
    world = GaussianMixtureWorld()
    rng = np.random.default_rng(0)
    split = world.draw(np.array([[9000, 1000], [9000, 1000]]), rng)
    points, labels = split.points.numpy(), split.labels.numpy()
    gaussian = fit_gaussian(points, labels, 2)
    np.testing.assert_allclose(gaussian.total_covariance(0), world.class_covariance(0), atol=0.05)
    mixture = fit_mixture(points, labels, 2, 2, rng)
    order = np.argsort(-mixture.weights[1])
    np.testing.assert_allclose(mixture.weights[1, order], [0.9, 0.1], atol=1e-3)
    np.testing.assert_allclose(mixture.means[1, order], world.means[1], atol=0.05)
    ones = np.ones(20_000, dtype=int)
    sampled_share = (world.subgroups_of(mixture.sample(ones, rng), ones) == 1).mean()
    assert 0.095 < sampled_share < 0.105


def test_a_seed_gives_a_row_per_generation_and_the_chain_does_not_depend_on_the_classifier():
    world = GaussianMixtureWorld(n_train_per_class=30, n_test_per_subgroup=50)
    regime = Regime("m", RefittedMixture(2), StackPolicy.named("replace"), 0.5)
    rows, blocks = run_seed(world, regime, 3, 2)
    assert [r["generation"] for r in rows] == [0, 1, 2] and set(blocks) == {"1", "2"}
    assert rows[0]["n_synthetic"] == 0 and rows[1]["n_real"] == 60 and rows[1]["n_synthetic"] == 60
    assert rows[0]["acc_rank"][0] < rows[0]["acc_rank"][1]  # the minority is classified worse
    assert 0.8 < rows[0]["acc"] <= 1 and rows[1]["quality_q"] > 0.9
    _, alone = run_seed(world, regime, 3, 2, classify=False)
    assert alone["2"]["minority_share_class"] == blocks["2"]["minority_share_class"]
    per_class = np.array(blocks["2"]["minority_share_class"])
    assert blocks["2"]["minority_share"] == pytest.approx(per_class.mean())
    assert blocks["2"]["imbalance_u"] == pytest.approx(np.abs(per_class - 0.1).mean())  # TV of two subgroups
    assert blocks["2"]["majority_gain"] == pytest.approx(-(per_class - 0.1).mean())
