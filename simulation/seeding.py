"""Every stage is seeded from (seed, generation, stage), so runs are reproducible and resumes exact."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


def stage_seed(seed: int, generation: int, stage: str) -> int:
    """A 31-bit seed that depends only on (seed, generation, stage)."""
    digest = hashlib.sha256(f"{seed}/{generation}/{stage}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class EpochSeeder(Callback):
    """Reseed every RNG before every training step from (stage seed, epoch, batch index).

    Lightning checkpoints do not carry RNG states, and the order in which Lightning draws random numbers around
    an epoch start (e.g. a DataLoader iterator's base seed) differs between a fresh epoch and the first epoch of a
    resumed fit. Seeding each step from its position makes dropout, noise and augmentation a pure function of
    (seed, epoch, step), so a stage resumed from a checkpoint computes exactly what an uninterrupted one does.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def _reseed(self, epoch: int, batch_idx: int) -> None:
        value = (self.seed + 7919 * epoch + 104_729 * (batch_idx + 1)) & 0x7FFFFFFF
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)  # all devices

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._reseed(trainer.current_epoch, -1)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._reseed(trainer.current_epoch, batch_idx)
