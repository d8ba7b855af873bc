"""Build the latent cache when a generator's fit starts: on its device, each DDP rank its share of the chunks.

The build runs inside ``trainer.fit`` because only there is the VAE on the training device (and, under DDP, the
process group up for the barriers); the training loader is made after ``on_fit_start``, so it reads the built cache.
"""

from __future__ import annotations

import logging

from lightning.pytorch.callbacks import Callback

from common.image_views import ImageView
from datamodules.latent_cache import LatentCache, real_split_identity

log = logging.getLogger(__name__)


class LatentCacheBuilder(Callback):
    """Encode what ``cache`` lacks for training on ``data``'s real split and stack at ``view``, before the first step.

    ``batch_size``: images per encoder call (the generator's training batch fits the device, so this does).
    ``encoded``: how many images this process encoded (0 when everything was cached already).
    """

    def __init__(self, cache: LatentCache, data, view: ImageView, batch_size: int) -> None:
        self.cache, self.data, self.view, self.batch_size = cache, data, view, int(batch_size)
        self.encoded = 0

    def on_fit_start(self, trainer, pl_module) -> None:
        real = self.data.prepare()["train"]
        stack = self.data.stack if self.data.stack_size else None
        # under the training step's precision context (autocast), so the cached moments are those a step computes
        with trainer.strategy.precision_plugin.forward_context():
            self.encoded = self.cache.prepare(
                self.data.viewed_split("train", self.view), real_split_identity(real), stack, self.view,
                pl_module.latent_identity(), pl_module.latent_moments, self.batch_size,
                rank=trainer.global_rank, world_size=trainer.world_size, barrier=trainer.strategy.barrier,
            )
        if self.encoded:
            log.info("latent cache: encoded %d images into %s", self.encoded, self.cache.root)
