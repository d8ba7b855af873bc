"""The known world, the perfect generators and the keep-rate filter do exactly what the closed forms assume."""

from __future__ import annotations

import pytest
import torch

from common.errors import ConfigError
from common.seeds import index_seed
from filters.base import FilterContext
from filters.chain import select_block
from sandbox.known_world import KnownWorld, feature_pixels, pixel_b_shares, rounded_normal_moments
from sandbox.perfect_generators import GaussianFitGenerator, ResamplingGenerator, per_sample_uniforms, sample_keys
from sandbox.subgroup_filter import SubgroupKeepRateFilter


def test_the_world_has_exact_subgroup_counts_read_back_from_the_pixels():
    world = KnownWorld(num_classes=5, train_per_class=20, b_per_class=6, side=3, eval_per_cell=4)
    splits = world.load()
    train = splits["train"]
    assert tuple(train.images.shape) == (100, 1, 3, 3) and world.facts.image_shape == (1, 3, 3)
    assert torch.equal(world.subgroups_from_pixels(train.images), train.groups)
    assert torch.bincount(train.labels * 2 + train.groups).tolist() == [14, 6] * 5
    assert torch.bincount(splits["test"].labels * 2 + splits["test"].groups).tolist() == [4, 4] * 5
    assert world.facts.subgroups == "pixels" and world.b_share == pytest.approx(0.3)


def test_trait_pixels_carry_the_subgroup_share_exactly_each_permuted_on_its_own():
    train = KnownWorld(num_classes=4, train_per_class=10, b_per_class=3, side=3, traits=True).load()["train"]
    shares = pixel_b_shares(train.images, train.labels, 4)
    assert torch.equal(shares, torch.full((4, 9), 0.3, dtype=torch.float64))
    flat = train.images.flatten(1)
    assert not all(torch.equal(flat[:, 0], flat[:, j]) for j in range(1, 9))  # not copies of the marker


def test_gaussian_features_have_the_stated_moments():
    train = KnownWorld(num_classes=50, train_per_class=200, side=4, feature_sd=10.0).load()["train"]
    values = feature_pixels(train.images).flatten()
    mean, variance = rounded_normal_moments(128.0, 10.0)
    assert mean == pytest.approx(128.0) and variance == pytest.approx(100 + 1 / 12, abs=1e-3)  # Sheppard
    assert float(values.mean()) == pytest.approx(mean, abs=4 * (variance / len(values)) ** 0.5)
    assert float(values.var()) == pytest.approx(variance, rel=4 * (2 / len(values)) ** 0.5)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_classes": 1}, "num_classes must be >= 2"),
    ({"b_per_class": 30}, "need 0 <= b_per_class <= train_per_class"),
    ({"side": 1}, "side must be >= 2"),
    ({"feature_sd": 20.0}, "feature_sd must be in (0, 16]"),
])
def test_a_bad_world_is_one_clear_error(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("]", r"\]")):
        KnownWorld(**kwargs).validate()


def test_per_sample_draws_are_a_pure_function_of_seed_and_index():
    keys = sample_keys(torch.tensor([7, 7]).numpy().astype("uint64"), torch.tensor([0, 12345]).numpy().astype("uint64"))
    assert keys.tolist() == [index_seed(7, 0), index_seed(7, 12345)]
    together = per_sample_uniforms(torch.arange(10), 3, 4)
    apart = torch.cat([per_sample_uniforms(torch.arange(5), 3, 4), per_sample_uniforms(torch.arange(5, 10), 3, 4)])
    assert torch.equal(together, apart)  # however the block is batched
    assert not torch.equal(together, per_sample_uniforms(torch.arange(10), 4, 4))
    many = per_sample_uniforms(torch.arange(100_000), 1, 1).flatten()
    assert float(many.mean()) == pytest.approx(0.5, abs=4 * (1 / 12 / 100_000) ** 0.5)


def test_the_resampling_generator_copies_training_images_of_the_requested_class():
    generator = ResamplingGenerator(num_classes=3, image_shape=(1, 2, 2))
    images = torch.arange(12, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous()
    labels = torch.tensor([0, 1, 2] * 4)
    generator.start_reading()
    generator.read(images[:6], labels[:6])
    generator.read(images[6:], labels[6:])
    generator.finish_reading()
    requested = torch.tensor([2] * 3000 + [0] * 3000)
    out = generator.generate(requested, torch.arange(6000), 5)
    values = out[:, 0, 0, 0].long()
    assert set(values[:3000].tolist()) == {2, 5, 8, 11} and set(values[3000:].tolist()) == {0, 3, 6, 9}
    counts = torch.bincount(values[:3000], minlength=12)[[2, 5, 8, 11]].double()
    assert float(((counts - 750) ** 2 / 750).sum()) < 16.3  # chi-square, 3 d.o.f., p = 0.001: uniform draws
    assert torch.equal(out[:10], generator.generate(requested[:10], torch.arange(10), 5))
    clone = ResamplingGenerator(num_classes=3, image_shape=(1, 2, 2))
    clone.load_state_dict(generator.state_dict())  # the pool's size travels with the checkpoint
    assert torch.equal(clone.generate(requested, torch.arange(6000), 5), out)
    with pytest.raises(RuntimeError, match=r"classes \[1\] are absent"):
        ResamplingGenerator(num_classes=3).generate(torch.tensor([1]), torch.arange(1), 0)


def test_the_gaussian_generator_fits_by_maximum_likelihood_and_samples_its_fit():
    generator = GaussianFitGenerator(num_classes=2, image_shape=(1, 2, 2))
    images = torch.tensor([[10, 20, 30, 40], [14, 20, 30, 48], [100, 100, 100, 100]], dtype=torch.uint8)
    generator.start_reading()
    generator.read(images.view(3, 1, 2, 2), torch.tensor([0, 0, 1]))
    generator.finish_reading()
    assert generator.means[0].flatten().tolist() == [12, 20, 30, 44]
    assert generator.variances[0].flatten().tolist() == [4, 0, 0, 16]  # divisor n, not n - 1
    out = generator.generate(torch.zeros(20_000, dtype=torch.long), torch.arange(20_000), 1).double().flatten(1)
    assert float(out[:, 3].mean()) == pytest.approx(44, abs=4 * (16 / 20_000) ** 0.5)
    assert float(out[:, 3].var()) == pytest.approx(16 + 1 / 12, rel=0.05)
    assert out[:, 1].unique().tolist() == [20.0]
    known = GaussianFitGenerator(num_classes=2, image_shape=(1, 2, 2), known_variance=9.0)
    known.load_state_dict(generator.state_dict())
    sampled = known.generate(torch.zeros(20_000, dtype=torch.long), torch.arange(20_000), 1).double().flatten(1)
    assert float(sampled[:, 1].var()) == pytest.approx(9 + 1 / 12, rel=0.05)  # the given variance, not the fit's
    with pytest.raises(ConfigError, match="known_variance must be > 0 or null"):
        GaussianFitGenerator(known_variance=0.0)


def test_the_keep_rate_filter_keeps_each_subgroup_at_its_rate():
    n = 40_000
    groups = torch.arange(n) % 2
    context = FilterContext(generation=3, class_names=["x"], sample_ids=torch.arange(n), subgroups=groups)
    keep, report = select_block([SubgroupKeepRateFilter([0.9, 0.3])], {}, torch.zeros(n), context)
    for g, rate in ((0, 0.9), (1, 0.3)):
        kept = float(keep[groups == g].double().mean())
        assert kept == pytest.approx(rate, abs=4 * (rate * (1 - rate) / (n / 2)) ** 0.5)
    again, _ = select_block([SubgroupKeepRateFilter([0.9, 0.3])], {}, torch.zeros(n), context)
    assert torch.equal(keep, again) and report["filter_kept"] == int(keep.sum())
    unknown = FilterContext(generation=3, class_names=["x"], sample_ids=torch.arange(4),
                            subgroups=torch.tensor([-1, -1, 0, 0]))
    kept_unknown, _ = select_block([SubgroupKeepRateFilter([1.0, 1.0])], {}, torch.zeros(4), unknown)
    assert kept_unknown.tolist() == [False, False, True, True]
    with pytest.raises(ConfigError, match="keep_rates must be probabilities in \\(0, 1\\]"):
        SubgroupKeepRateFilter([0.5, 1.5])
