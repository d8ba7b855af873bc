"""Every random stream of a run is derived here from the run's seed, so runs are reproducible and resumes exact.

* ``stage_seed(seed, generation, stage)``: the seed of one stage of the loop (a hash, so stages never collide);
* ``seeded_generator(seed, stream)``: an independent torch generator per named stream of a dataset, so switching
  one option (e.g. the colour bias) never shifts another draw (e.g. the split);
* ``index_seed(seed, index)``: a per-item seed (the noise of generated sample ``index``, one scoring batch, ...),
  so a result does not depend on how items are batched or split across ranks; ``sample_generators`` and
  ``per_sample_noise`` are the only place a generated sample's noise is drawn from it;
* ``epoch_order_seed(seed, epoch)``: the seed of one epoch's sample order
  (``datamodules.mixing.MixedEpochSampler``), the same on every rank, so each rank splits the same permutation;
* ``step_seed(seed, epoch, step, rank)``: the seed of one training step on one DDP rank (see
  ``callbacks.epoch_seeder``); rank 0's is the seed a one-process run uses, the other ranks' differ.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

_INDEX_MULTIPLIER = 1_000_003
_MAX_SEED = 2**63 - 1
_RANK_STRIDE = 1_000_000_007
_EPOCH_MULTIPLIER = 100_003


def stage_seed(seed: int, generation: int, stage: str) -> int:
    """A 31-bit seed that depends only on (seed, generation, stage)."""
    digest = hashlib.sha256(f"{seed}/{generation}/{stage}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def seeded_generator(seed: int, stream: int) -> torch.Generator:
    """A torch generator for one (seed, stream) pair, well mixed so nearby seeds give unrelated draws."""
    mixed = int(np.random.SeedSequence([int(seed) % 2**32, int(stream)]).generate_state(1)[0])
    return torch.Generator().manual_seed(mixed)


def index_seed(seed: int, index: int) -> int:
    """The seed of item ``index`` of a stream seeded with ``seed``."""
    return (int(seed) * _INDEX_MULTIPLIER + int(index)) % _MAX_SEED


def epoch_order_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch``'s sample order in a sampler seeded with ``seed`` (no rank term: every rank must
    draw the same permutation before the batch sampler splits it)."""
    return int(seed) * _EPOCH_MULTIPLIER + int(epoch)


def step_seed(seed: int, epoch: int, step: int, rank: int = 0) -> int:
    """The seed of training step ``step`` of epoch ``epoch`` (step -1: the epoch's start) on DDP rank ``rank``.

    The rank term is 0 for rank 0, so a one-process run draws what it always drew; every other rank draws its own
    noise, timesteps, latents and dropout masks (a prime stride far from the epoch and step strides).
    """
    return (int(seed) + 7919 * int(epoch) + 104_729 * (int(step) + 1) + _RANK_STRIDE * int(rank)) & 0x7FFFFFFF


def sample_generators(indices: torch.Tensor, seeds: torch.Tensor | int) -> list[torch.Generator]:
    """One CPU generator per generated sample, seeded with ``index_seed(seed, index)``: what a sample's noise is
    drawn from, the same on every device and however the samples are batched or split across ranks."""
    index_list = [int(i) for i in torch.as_tensor(indices).flatten().tolist()]
    seed_list = torch.as_tensor(seeds).flatten().tolist()
    if len(seed_list) == 1:
        seed_list = seed_list * len(index_list)
    if len(seed_list) != len(index_list):
        raise ValueError(f"{len(seed_list)} seeds for {len(index_list)} samples: give one seed, or one per sample")
    return [torch.Generator().manual_seed(index_seed(seed, index)) for seed, index in zip(seed_list, index_list)]


def per_sample_noise(indices: torch.Tensor, shape: tuple[int, ...], seeds: torch.Tensor | int,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard-normal noise of ``shape`` for every sample, a pure function of (seed, index)."""
    generators = sample_generators(indices, seeds)
    out = torch.empty((len(generators), *shape))
    for row, generator in enumerate(generators):
        out[row] = torch.randn(shape, generator=generator)
    return out.to(device)
