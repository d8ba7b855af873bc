"""Reseed every RNG before every training step, so a stage resumed from a checkpoint is exact."""

from __future__ import annotations

import random

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from common.seeds import step_seed


class EpochSeeder(Callback):
    """Reseed every RNG before every training step from (stage seed, epoch, batch index, global rank).

    Lightning checkpoints do not carry RNG states, and the order in which Lightning draws random numbers around
    an epoch start (e.g. a DataLoader iterator's base seed) differs between a fresh epoch and the first epoch of a
    resumed fit. Seeding each step from its position makes dropout, noise and augmentation a pure function of
    (seed, epoch, step), so a stage resumed from a checkpoint computes exactly what an uninterrupted one does.

    The global rank enters the seed too: DDP ranks train on different batches and must not share their noise,
    diffusion timesteps, GAN latents, dropout masks or label dropout (rank 0 keeps the seed of a one-process run,
    so that run is unchanged). Samplers never draw from these RNGs: every rank shuffles with the stage's own seed.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def _reseed(self, epoch: int, batch_idx: int, rank: int) -> None:
        value = step_seed(self.seed, epoch, batch_idx, rank)
        random.seed(value)
        np.random.seed(value)
        # torch.manual_seed would also queue a lazy seeding call (with a captured stack) for every uninitialised
        # accelerator backend, on every step: seed the CPU generator, and the GPUs once CUDA runs
        torch.default_generator.manual_seed(value)
        if torch.cuda.is_initialized():
            torch.cuda.manual_seed_all(value)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._reseed(trainer.current_epoch, -1, trainer.global_rank)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._reseed(trainer.current_epoch, batch_idx, trainer.global_rank)
