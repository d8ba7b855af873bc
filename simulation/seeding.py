"""Every stage is seeded from (seed, generation, stage), so runs are reproducible and resumes exact."""

from __future__ import annotations

import hashlib

import lightning as L
from lightning.pytorch.callbacks import Callback


def stage_seed(seed: int, generation: int, stage: str) -> int:
    """A 31-bit seed that depends only on (seed, generation, stage)."""
    digest = hashlib.sha256(f"{seed}/{generation}/{stage}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class EpochSeeder(Callback):
    """Reseed all RNGs at the start of every epoch from (stage seed, epoch).

    Lightning checkpoints do not carry RNG states; reseeding per epoch makes a stage resumed from its last
    end-of-epoch checkpoint draw exactly the same random numbers as an uninterrupted one.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        L.seed_everything((self.seed + 7919 * trainer.current_epoch) & 0x7FFFFFFF, workers=True, verbose=False)
