"""Generation-stage gate: FID of the generated block against a fixed subset of the real training images (eq. 1).

Every rank feeds the metric its share of both sides (its generated samples that fall in the FID subset, every
W-th real image of the subset, read from the real split as the extractor's view sees it); torchmetrics sums the
states across ranks when computing, so the FID equals a 1-process run's. The real side's summed statistics are kept
(``real_statistics``) so the push stage can measure the kept samples against the same reference.

The real side does not depend on the generation (the same images, the same extractor: Inception, or the fixed
generation-0 reference classifier), so a later generation passes the statistics an earlier one saved
(``saved_real_statistics``) and no real image is read or extracted again: the real side is computed once per run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from callbacks.block_gate import BlockGate
from common.distributed import rank_and_world_size
from common.generated import GeneratedBatch
from common.image_views import ImageView
from datamodules.base import LabelledSplit
from datamodules.mixing import fetch_batch
from metrics.fid import REAL_STATES, fid_metric, fid_subset, real_statistics


class GeneratorFID(BlockGate):
    def __init__(self, feature_factory: Callable[[torch.device], nn.Module], real: LabelledSplit,
                 real_ids: torch.Tensor, view: ImageView, block_size: int, num_samples: int, seed: int,
                 batch_size: int = 256, saved_real_statistics: dict[str, torch.Tensor] | None = None) -> None:
        """``feature_factory(device)`` builds the extractor on a rank's device; ``real`` is the real split in the
        extractor's view and ``real_ids`` its subset; generated images pass through ``view``; the first
        ``num_samples`` of a seeded permutation of the block enter the fake side. ``saved_real_statistics``: the
        real side's summed states as an earlier generation saved them (then ``real`` is not read)."""
        self.feature_factory = feature_factory
        self.real, self.real_ids, self.view = real, real_ids.long(), view
        self.batch_size = int(batch_size)
        self.fake_ids = fid_subset(int(block_size), int(num_samples), int(seed), salt=1)
        #: after generation: the FID of the block (the same on every rank)
        self.fid: float | None = None
        #: after generation: the real side's states summed over every rank (``metrics.fid.REAL_STATES``)
        self.real_statistics: dict[str, torch.Tensor] = {}
        self.saved_real_statistics = saved_real_statistics

    def on_predict_start(self, trainer, pl_module) -> None:
        device = pl_module.device
        self.metric = fid_metric(self.feature_factory(device)).to(device)
        rank, world_size = rank_and_world_size()
        if self.saved_real_statistics is not None:
            if rank == 0:  # the states are sums over the ranks: rank 0 holds them all, the others add zeros
                for name in REAL_STATES:
                    current = getattr(self.metric, name)
                    saved = self.saved_real_statistics[name].to(current.device, current.dtype)
                    setattr(self.metric, name, saved.reshape(current.shape))
            return
        share = self.real_ids[rank::world_size]
        for start in range(0, len(share), self.batch_size):
            images = fetch_batch(self.real, share[start : start + self.batch_size])["image"]
            self.metric.update(images.to(device), real=True)

    def consume(self, batch: GeneratedBatch, pl_module) -> None:
        chosen = torch.isin(batch.ids, self.fake_ids)
        if bool(chosen.any()):
            self.metric.update(self.view(batch.images[chosen]).to(pl_module.device), real=False)

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        self.fid = float(self.metric.compute())
        self.real_statistics = real_statistics(self.metric)
