"""Data regimes: which generations each stack policy keeps, and what an epoch draws from them and in what proportion."""

import pytest
import torch

from common.errors import ConfigError
from datamodules.generational import GenerationalDataModule, TrainingSpec
from tests.datamodules.test_mixing import FakeSource

SIZES = {1: 40, 2: 40, 3: 40, 4: 40, 5: 80}  # five generations pushed; the newest is twice as large


def after_five_generations(tmp_path, policy: str) -> GenerationalDataModule:
    data = GenerationalDataModule(FakeSource(100), synthetic_share=0.5, stack_policy=policy, batch_size=16)
    data.open_stack(tmp_path / "stack", window=3)
    for generation, size in SIZES.items():
        data.push_block(torch.full((size, 1, 8, 8), generation, dtype=torch.uint8), torch.arange(size) % 4,
                        generation)
    return data


def drawn_generations(data: GenerationalDataModule, epochs: int = 40) -> dict[int, float]:
    """Share of each generation among the synthetic samples of ``epochs`` epochs (the image value is the generation)."""
    counts: dict[int, int] = {}
    loader = data.train_loader(TrainingSpec(batch_size=16, epoch_seed=0))
    for epoch in range(epochs):
        loader.batch_sampler.set_epoch(epoch)
        for batch in loader:
            for generation in batch["image"][batch["subgroup"] == -1][:, 0, 0, 0].tolist():
                counts[generation] = counts.get(generation, 0) + 1
    total = sum(counts.values())
    return {g: counts[g] / total for g in sorted(counts)}


@pytest.mark.parametrize("policy, kept, per_epoch", [
    ("fifo", [3, 4, 5], 100),        # the last 3 generations (160 samples); the p target (100) is reached
    ("replace", [5], 80),            # the newest only, used whole (smaller than the target)
    ("accumulate", [1, 2, 3, 4, 5], 240),  # everything, every sample once per epoch, whatever p
    ("subsample", [1, 2, 3, 4, 5], 100),   # everything kept, the p budget drawn from all of it
])
def test_what_each_policy_keeps_and_how_much_an_epoch_draws(tmp_path, policy, kept, per_epoch):
    data = after_five_generations(tmp_path, policy)
    assert data.stack.generations == kept
    assert data.n_synthetic == per_epoch
    shares = drawn_generations(data)
    assert sorted(shares) == kept  # an epoch draws from every kept generation and from no other
    weights = {g: SIZES[g] / sum(SIZES[k] for k in kept) for g in kept}  # uniform over the kept samples
    for generation in kept:
        assert shares[generation] == pytest.approx(weights[generation], abs=0.03), (policy, generation)


def test_a_sample_budget_does_not_apply_to_policies_that_keep_everything():
    with pytest.raises(ConfigError, match="keeps every generation"):
        GenerationalDataModule(FakeSource(), stack_policy="accumulate", stack_capacity=100).validate()
    with pytest.raises(ConfigError, match="stack_policy must be one of"):
        GenerationalDataModule(FakeSource(), stack_policy="window").validate()
