"""Mixing real data with the stack at synthetic share p."""

import dataclasses

import pytest
import torch

from common.errors import ConfigError
from common.image_views import ImageView
from datamodules.base import ImageSplit, RealDataSource
from datamodules.facts import DatasetFacts
from datamodules.generational import GenerationalDataModule, TrainingSpec
from datamodules.mixing import MixedEpochSampler, synthetic_per_epoch
from datamodules.regime import DataRegime


class FakeSource(RealDataSource):
    facts = DatasetFacts(name="fake", class_names=("a", "b", "c", "d"), image_shape=(1, 8, 8),
                         classifier_view=ImageView(8), group_names=("x", "y"), subgroups="given")

    def __init__(self, n_train: int = 100) -> None:
        self.n_train = n_train

    def load(self):
        def split(n, offset):
            images = torch.full((n, 1, 8, 8), 7, dtype=torch.uint8)
            return ImageSplit(images, torch.arange(n) % 4, torch.arange(n) % 2 + 0 * offset)

        return {"train": split(self.n_train, 0), "val": split(20, 1), "test": split(20, 2)}


def push_blocks(dm: GenerationalDataModule, tmp_path, sizes, max_generations: int | None = None) -> None:
    """Open the data module's stack in ``tmp_path`` and push blocks of synthetic images (value 200) into it."""
    dm.regime = dataclasses.replace(dm.regime, window=max_generations or max(len(sizes), 1))
    dm.open_stack(tmp_path / "stack")
    for g, n in enumerate(sizes, start=1):
        dm.push_block(torch.full((n, 1, 8, 8), 200, dtype=torch.uint8), torch.arange(n) % 4, g)


def epoch_counts(dm: GenerationalDataModule) -> tuple[int, int, torch.Tensor]:
    real = synthetic = 0
    labels = []
    for batch in dm.train_loader(TrainingSpec(dm.batch_size, epoch_seed=0)):
        images, batch_labels, groups = batch["image"], batch["label"], batch["subgroup"]
        is_syn = groups == -1
        synthetic += int(is_syn.sum())
        real += int((~is_syn).sum())
        # synthetic images are 200, real ones 7: subgroup -1 marks exactly the synthetic samples
        assert torch.all(images[is_syn] == 200) and torch.all(images[~is_syn] == 7)
        labels.append(batch_labels)
    return real, synthetic, torch.cat(labels)


@pytest.mark.parametrize("p, expected_synthetic", [(0.0, 0), (0.25, 33), (0.5, 100), (0.75, 300)])
def test_epoch_holds_every_real_sample_and_round_p_over_1_minus_p_synthetic(tmp_path, p, expected_synthetic):
    dm = GenerationalDataModule(FakeSource(100), regime=DataRegime(synthetic_share=p), batch_size=16)
    push_blocks(dm, tmp_path, [150, 150])
    real, synthetic, _ = epoch_counts(dm)
    assert real == 100
    assert synthetic == expected_synthetic == dm.n_synthetic


def test_empty_stack_means_real_data_only(tmp_path):
    dm = GenerationalDataModule(FakeSource(100), regime=DataRegime(synthetic_share=0.5), batch_size=32)
    push_blocks(dm, tmp_path, [])
    assert epoch_counts(dm)[:2] == (100, 0)


def test_synthetic_draws_are_without_replacement_while_the_stack_is_large_enough():
    sampler = MixedEpochSampler(n_real=10, n_stack=50, n_synthetic=30, seed=0)
    order = sampler.indices_for_epoch(0)
    synthetic = order[order >= 10]
    assert len(synthetic) == 30 and len(synthetic.unique()) == 30
    assert sorted(order[order < 10].tolist()) == list(range(10))
    # a small stack: every stack sample at least once, the rest drawn with replacement
    small = MixedEpochSampler(n_real=10, n_stack=5, n_synthetic=12, seed=0).indices_for_epoch(0)
    assert set(small[small >= 10].tolist()) == set(range(10, 15)) and (small >= 10).sum() == 12


def test_epochs_differ_but_are_reproducible():
    a = MixedEpochSampler(10, 50, 30, seed=1)
    b = MixedEpochSampler(10, 50, 30, seed=1)
    first, second = list(a), list(a)
    assert first != second
    assert [list(b), list(b)] == [first, second]


def test_synthetic_per_epoch_formula():
    assert synthetic_per_epoch(1000, 0.5, 5000) == 1000
    assert synthetic_per_epoch(1000, 0.2, 5000) == 250
    assert synthetic_per_epoch(1000, 0.5, 10) == 10  # a small stack is used whole, never repeated
    assert synthetic_per_epoch(1000, 0.5, 10, oversample=True) == 1000
    assert synthetic_per_epoch(1000, 0.5, 0) == 0
    assert synthetic_per_epoch(1000, 0.0, 10) == 0


def test_a_small_stack_is_used_whole_once_per_epoch_and_the_share_grows_with_it(tmp_path):
    """Generation 1 of a p = 0.5 run: the stack (60) is smaller than the target (100)."""
    dm = GenerationalDataModule(FakeSource(100), regime=DataRegime(synthetic_share=0.5), batch_size=16)
    push_blocks(dm, tmp_path, [60], max_generations=3)
    real, synthetic, _ = epoch_counts(dm)
    assert (real, synthetic) == (100, 60)
    order = dm.train_loader(TrainingSpec(16, 0)).batch_sampler.sampler.indices_for_epoch(0)
    drawn = order[order >= 100]
    assert len(drawn.unique()) == len(drawn) == 60  # no synthetic sample twice in an epoch
    assert dm.realised_synthetic_share == pytest.approx(60 / 160) and dm.synthetic_reuse == 1.0
    dm.push_block(torch.full((80, 1, 8, 8), 200, dtype=torch.uint8), torch.arange(80) % 4, 2)
    assert (dm.n_synthetic, dm.realised_synthetic_share, dm.synthetic_reuse) == (100, 0.5, pytest.approx(100 / 140))


def test_oversample_forces_the_share_with_repeats(tmp_path):
    dm = GenerationalDataModule(FakeSource(100), regime=DataRegime(synthetic_share=0.5, oversample=True), batch_size=16)
    push_blocks(dm, tmp_path, [60])
    real, synthetic, _ = epoch_counts(dm)
    assert (real, synthetic) == (100, 100)
    assert dm.realised_synthetic_share == 0.5 and dm.synthetic_reuse == pytest.approx(100 / 60)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_p_outside_unit_interval_is_rejected(p):
    with pytest.raises(ConfigError, match=r"data.regime.synthetic_share \(p\) must be in \[0, 1\)"):
        GenerationalDataModule(FakeSource(), regime=DataRegime(synthetic_share=p)).validate()


def test_generated_labels_follow_the_real_label_distribution():
    dm = GenerationalDataModule(FakeSource(100), regime=DataRegime(synthetic_share=0.5))
    labels = dm.generation_labels(40, seed=3)
    assert torch.bincount(labels, minlength=4).tolist() == [10, 10, 10, 10]
    batches = list(dm.generation_loader(labels, seed=5, batch_size=16))
    indices = torch.cat([b[0] for b in batches])
    assert indices.tolist() == list(range(40))


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_batches_split_the_epoch_across_ranks_with_equal_batch_counts(world_size):
    from datamodules.mixing import MixedBatchSampler

    epoch = MixedEpochSampler(n_real=10, n_stack=20, n_synthetic=7, seed=4).indices_for_epoch(0)
    per_rank = []
    for rank in range(world_size):
        sampler = MixedBatchSampler(MixedEpochSampler(10, 20, 7, seed=4), batch_size=4, rank=rank,
                                    world_size=world_size)
        batches = list(sampler)
        assert len(batches) == len(sampler) and all(isinstance(b, torch.Tensor) for b in batches)
        per_rank.append(torch.cat(batches))
    assert len({len(p) for p in per_rank}) == 1  # every rank runs the same number of steps (DDP would hang)
    seen = torch.cat(per_rank)
    assert set(seen.tolist()) == set(epoch.tolist())  # every sample of the epoch is visited
    assert len(seen) - len(epoch) < world_size  # padding only to a multiple of the world size


def test_large_stacks_mix_through_disk_reads_with_the_same_counts(tmp_path, monkeypatch):
    import datamodules.stack as stack_module

    monkeypatch.setattr(stack_module, "IN_MEMORY_LIMIT_BYTES", 0)  # as if the stack held millions of images
    dm = GenerationalDataModule(FakeSource(100), regime=DataRegime(synthetic_share=0.5), batch_size=16)
    push_blocks(dm, tmp_path, [150, 150])
    real, synthetic, _ = epoch_counts(dm)
    assert (real, synthetic) == (100, 100)


def test_the_epoch_order_is_drawn_from_epoch_order_seed():
    """The mixed sampler's epoch order comes from ``common.seeds.epoch_order_seed`` (the formula it had, unchanged)."""
    g = torch.Generator().manual_seed(3 * 100_003 + 2)
    synthetic = torch.randperm(50, generator=g)[:30]
    expected = torch.cat([torch.arange(10), synthetic + 10])
    expected = expected[torch.randperm(40, generator=g)]
    assert torch.equal(MixedEpochSampler(10, 50, 30, seed=3).indices_for_epoch(2), expected)


def test_the_mixed_sampler_ignores_the_global_rng():
    """Its order comes from its own generator, so each DDP rank, whatever its global RNG did, splits the same epoch."""
    torch.manual_seed(0)
    first = MixedEpochSampler(10, 50, 30, seed=3).indices_for_epoch(1)
    torch.manual_seed(12345)
    torch.rand(1000)
    assert torch.equal(MixedEpochSampler(10, 50, 30, seed=3).indices_for_epoch(1), first)
