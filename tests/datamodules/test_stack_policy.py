"""Data regimes: which generations each stack policy keeps, and what an epoch draws from them and in what proportion."""

import pytest
import torch

from common.errors import ConfigError
from datamodules.generational import GenerationalDataModule, TrainingSpec
from datamodules.regime import PAPER_REGIME, DataRegime
from datamodules.stack_policy import Accumulate, Fifo, Fresh, Replace, StackPolicy, Subsample, policy_names
from tests.datamodules.test_mixing import FakeSource

SIZES = {1: 40, 2: 40, 3: 40, 4: 40, 5: 80}  # five generations pushed; the newest is twice as large


def after_five_generations(tmp_path, policy: str) -> GenerationalDataModule:
    data = GenerationalDataModule(FakeSource(100), regime=DataRegime(policy=policy, window=3, synthetic_share=0.5),
                                  batch_size=16)
    data.open_stack(tmp_path / "stack")
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


@pytest.mark.parametrize("policy, window, kept", [
    (Fifo(), 3, 3), (Fifo(), 1, 1), (Fifo(), 7, 7),
    (Replace(), 3, 1), (Replace(), 7, 1),
    (Accumulate(), 3, None), (Subsample(), 3, None),
])
def test_each_policy_class_answers_how_many_generations_the_stack_keeps(policy, window, kept):
    assert policy.kept_generations(window) == kept
    assert policy.keeps_every_generation == (kept is None)


# N_real = 300, p = 0.25: the target is round(0.25 / 0.75 * 300) = 100 synthetic samples per epoch
@pytest.mark.parametrize("policy, stack_size, oversample, draws", [
    (Fifo(), 400, False, 100), (Fifo(), 60, False, 60), (Fifo(), 60, True, 100), (Fifo(), 0, False, 0),
    (Replace(), 400, False, 100), (Replace(), 60, False, 60), (Replace(), 60, True, 100),
    (Subsample(), 400, False, 100), (Subsample(), 60, False, 60), (Subsample(), 60, True, 100),
    (Accumulate(), 400, False, 400), (Accumulate(), 60, True, 60), (Accumulate(), 0, False, 0),
])
def test_each_policy_class_answers_how_many_synthetic_samples_an_epoch_draws(policy, stack_size, oversample, draws):
    assert policy.synthetic_per_epoch(300, 0.25, stack_size, oversample) == draws


def test_the_regime_section_hands_its_settings_to_its_policy():
    regime = DataRegime(policy="replace", window=4, synthetic_share=0.75, oversample=True)
    assert regime.stack_policy == Replace() and regime.kept_generations == 1
    assert regime.synthetic_per_epoch(100, 10) == 300  # round(0.75 / 0.25 * 100), oversampled past the stack
    assert DataRegime(policy="fifo", window=4).kept_generations == 4
    assert PAPER_REGIME == DataRegime(policy="fifo", window=3, synthetic_share=0.5, capacity=None, oversample=False)


def test_every_regime_is_a_registered_class_selected_by_its_name():
    assert policy_names() == ("fifo", "replace", "accumulate", "subsample", "fresh")
    assert [type(StackPolicy.named(name)) for name in policy_names()] == [Fifo, Replace, Accumulate, Subsample, Fresh]


def test_a_new_regime_is_one_class(tmp_path):
    """Defining a subclass registers it: ``data.regime.policy`` selects it with no other change."""

    class EveryOther(StackPolicy):
        name = "every_other_test_only"

        def kept_generations(self, window: int) -> int | None:
            return 2 * window

    try:
        regime = DataRegime(policy="every_other_test_only", window=2)
        regime.validate()
        assert regime.kept_generations == 4 and "every_other_test_only" in policy_names()
    finally:
        del StackPolicy._registry["every_other_test_only"]


@pytest.mark.parametrize("regime, message", [
    (DataRegime(policy="window"),
     r"data.regime.policy must be one of \('fifo', 'replace', 'accumulate', 'subsample', 'fresh'\), got 'window'"),
    (DataRegime(policy="accumulate", capacity=100),
     "data.regime.capacity evicts old generations, but data.regime.policy 'accumulate' keeps every generation"),
    (DataRegime(policy="subsample", capacity=100),
     "data.regime.capacity evicts old generations, but data.regime.policy 'subsample' keeps every generation"),
    (DataRegime(window=0), r"data.regime.window must be >= 1 .*got 0"),
    (DataRegime(capacity=0), "data.regime.capacity must be a positive number of samples or null, got 0"),
    (DataRegime(synthetic_share=1.0, policy="subsample"),
     r"data.regime.synthetic_share \(p\) must be in \[0, 1\), or 1 with .* got 1.0 with policy 'subsample'"),
    (DataRegime(synthetic_share=1.0, oversample=True),
     r"data.regime.synthetic_share \(p\) must be in \[0, 1\), or 1 .* got 1.0 with policy 'fifo' and oversample"),
    (DataRegime(synthetic_share=-0.1), r"data.regime.synthetic_share \(p\) must be in \[0, 1\), or 1 .*got -0.1"),
])
def test_each_setting_out_of_range_is_one_config_error_naming_its_key(regime, message):
    with pytest.raises(ConfigError, match=message):
        regime.validate()
    with pytest.raises(ConfigError, match=message):  # the data module validates its regime
        GenerationalDataModule(FakeSource(), regime=regime).validate()


def test_a_sample_budget_is_kept_by_the_policies_that_evict():
    for policy in ("fifo", "replace"):
        DataRegime(policy=policy, capacity=100).validate()
