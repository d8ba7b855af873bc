"""p = 1 (pure replacement) and the ``fresh`` regime in the data module: what an epoch holds, and the one clear error
for every setting where they are not defined."""

from __future__ import annotations

import pytest
import torch

from common.errors import ConfigError
from datamodules.fresh_real import fresh_indices, fresh_pool_problem, max_fresh_per_generation, per_class_quota
from datamodules.generational import GenerationalDataModule, TrainingSpec
from datamodules.regime import DataRegime
from datamodules.stack_policy import StackPolicy, policy_names
from tests.datamodules.test_mixing import FakeSource


def epoch(data: GenerationalDataModule, generation: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, groups) of one training epoch (real samples have a subgroup >= 0, stack samples -1)."""
    loader = data.train_loader(TrainingSpec(batch_size=1000, epoch_seed=0, real_generation=generation))
    images, groups = zip(*[(b["image"], b["subgroup"]) for b in loader])
    return torch.cat(images), torch.cat(groups)


@pytest.mark.parametrize("policy", ["fifo", "replace"])
def test_at_p_1_an_epoch_is_the_whole_stack_and_no_real_sample(tmp_path, policy):
    data = GenerationalDataModule(FakeSource(100), DataRegime(policy=policy, synthetic_share=1.0, window=2))
    data.validate()
    data.open_stack(tmp_path / "stack")
    _, groups = epoch(data)
    assert len(groups) == 100 and bool((groups >= 0).all())  # before any block: the real data
    data.push_block(torch.full((30, 1, 8, 8), 1, dtype=torch.uint8), torch.arange(30) % 4, 1)
    data.push_block(torch.full((20, 1, 8, 8), 2, dtype=torch.uint8), torch.arange(20) % 4, 2)
    images, groups = epoch(data)
    kept = {"fifo": 50, "replace": 20}[policy]
    assert len(groups) == kept and bool((groups == -1).all())
    assert (data.real_per_epoch, data.n_synthetic, data.realised_synthetic_share) == (0, kept, 1.0)
    assert sorted(images[:, 0, 0, 0].unique().tolist()) == ([1, 2] if policy == "fifo" else [2])


@pytest.mark.parametrize("policy, oversample", [("accumulate", False), ("subsample", False), ("fresh", False),
                                                ("fifo", True)])
def test_p_1_is_refused_where_it_is_not_defined(policy, oversample):
    extra = {"fresh_real_per_generation": 10} if policy == "fresh" else {}
    data = GenerationalDataModule(FakeSource(100), DataRegime(policy=policy, synthetic_share=1.0,
                                                              oversample=oversample, **extra))
    with pytest.raises(ConfigError, match=r"must be in \[0, 1\), or 1 with data.regime.policy in \('fifo', "
                                          r"'replace'\) and data.regime.oversample false"):
        data.validate()


def test_fresh_is_a_stack_policy():
    assert "fresh" in policy_names()
    fresh = StackPolicy.named("fresh")
    assert fresh.draws_fresh_real and fresh.kept_generations(3) == 1 and not fresh.allows_all_synthetic


def test_fresh_deals_the_pool_stratified_and_never_twice():
    labels = torch.arange(100) % 4  # 25 per class
    chunks = [fresh_indices(labels, 8, generation) for generation in range(3)]
    assert all(torch.bincount(labels[c], minlength=4).tolist() == [2, 2, 2, 2] for c in chunks)
    assert len(set(torch.cat(chunks).tolist())) == 24  # disjoint
    assert per_class_quota(torch.tensor([0] * 60 + [1] * 40), 5).tolist() == [3, 2]  # 3.0 / 2.0
    assert per_class_quota(torch.tensor([0] * 50 + [1] * 30 + [2] * 20), 7).tolist() == [4, 2, 1]  # 3.5/2.1/1.4


def test_fresh_epochs_use_their_generations_real_samples(tmp_path):
    data = GenerationalDataModule(FakeSource(100), DataRegime(policy="fresh", synthetic_share=0.5,
                                                              fresh_real_per_generation=20))
    data.validate()
    data.open_stack(tmp_path / "stack")
    assert data.n_real == 20 and data.regime.kept_generations == 1
    for generation in (1, 2):
        data.push_block(torch.full((30, 1, 8, 8), generation, dtype=torch.uint8), torch.arange(30) % 4, generation)
    images, groups = epoch(data, generation=2)
    assert int((groups >= 0).sum()) == 20 and int((groups == -1).sum()) == 20  # p / (1 - p) * 20 of the newest
    assert set(images[groups == -1][:, 0, 0, 0].tolist()) == {2}
    train = data.prepare()["train"]
    first = data.real_training_split(data.view(), 0)
    second = data.real_training_split(data.view(), 1)
    assert torch.equal(first.labels, train.labels[fresh_indices(train.labels, 20, 0)])
    assert not set(fresh_indices(train.labels, 20, 0).tolist()) & set(fresh_indices(train.labels, 20, 1).tolist())
    assert len(second) == 20


def test_a_pool_too_small_for_the_generations_is_one_clear_error():
    labels = torch.arange(100) % 4
    assert fresh_pool_problem(labels, 20, 4) is None  # 5 generations x 5 per class = 25 per class
    message = fresh_pool_problem(labels, 20, 5)
    assert message == ("data.regime.policy 'fresh' draws 20 new real samples for each of the 6 generations (0-5), but "
                       "the real training pool has 100 samples and class 0 runs short by 5: lower "
                       "data.regime.fresh_real_per_generation to at most 16 or loop.generations, or use a larger "
                       "training split")
    assert max_fresh_per_generation(labels, 5) == 16
    data = GenerationalDataModule(FakeSource(100), DataRegime(policy="fresh", fresh_real_per_generation=20))
    assert data.fresh_pool_problem(5) == message and data.fresh_pool_problem(4) is None


@pytest.mark.parametrize("policy, per_generation, message", [
    ("fresh", None, "data.regime.policy 'fresh' needs data.regime.fresh_real_per_generation"),
    ("fifo", 10, "unset data.regime.fresh_real_per_generation or set data.regime.policy: fresh (got 'fifo')"),
])
def test_fresh_and_its_per_generation_count_go_together(policy, per_generation, message):
    data = GenerationalDataModule(FakeSource(100), DataRegime(policy=policy,
                                                              fresh_real_per_generation=per_generation))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        data.validate()


def test_the_latent_cache_is_refused_with_the_fresh_regime(tmp_path):
    """The latent cache encodes the whole real split once; fresh trains each generation on new real samples."""
    from simulation.config import LoopConfig
    from simulation.stages.base import RunContext
    from simulation.validation import _data_problems

    class CachingGenerator:
        cache_latents = True

    data = GenerationalDataModule(FakeSource(100), DataRegime(policy="fresh", fresh_real_per_generation=10))
    context = RunContext(run_dir=None, data=data, trainers=None, loop=LoopConfig(generations=2), quality=None,
                         classifiers=[], filters=[], generator=CachingGenerator(), seed=0)
    with pytest.raises(ConfigError, match="set model.init_args.cache_latents: false with the fresh regime"):
        _data_problems(context)
    CachingGenerator.cache_latents = False
    _data_problems(context)  # fine without the cache
