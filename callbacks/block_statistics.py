"""Generation-stage gate: the block's statistics of the paper's section 5 (q_t, u_t, majority_gain).

Every rank runs the generation-0 reference classifier (q_t: does the image show the requested class?) and the
subgroup oracle (u_t: which subgroup did the generator produce?) on its own samples; the per-sample results are
gathered in id order, so every rank can compute the block's statistics, and the push stage those of the kept
samples, exactly as one process would. Both see the generated images as the classifiers see real ones (``view``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from callbacks.block_gate import BlockGate
from common.distributed import gather_by_index
from common.generated import BlockScores, GeneratedBatch
from common.image_views import ImageView
from lightning_modules.classifier import ClassifierModule
from metrics.block_statistics import block_statistics

#: ``oracle(images uint8, labels) -> subgroup ids`` (-1 where unreadable), built on a rank's device
OracleFactory = Callable[[torch.device], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]


class BlockStatistics(BlockGate):
    def __init__(self, reference_checkpoint: str, real_counts: torch.Tensor | None,
                 oracle_factory: OracleFactory | None = None, view: ImageView | None = None) -> None:
        """``real_counts``: (L, G) subgroup counts of the real training data (None without subgroups); ``view``:
        the classifiers' view of a generated image (None: as generated)."""
        self.reference_checkpoint = reference_checkpoint
        self.view = view
        self.real_counts = real_counts
        self.oracle_factory = oracle_factory
        #: after generation, in id order: requested label, the reference's predicted class, the oracle's subgroup
        self.per_sample: dict[str, torch.Tensor] = {}
        #: after generation: quality_q, imbalance_u, majority_gain of the raw block
        self.statistics: dict[str, float | None] = {}

    def on_predict_start(self, trainer, pl_module) -> None:
        self.reference = ClassifierModule.from_checkpoint(self.reference_checkpoint, pl_module.device)
        self.oracle = self.oracle_factory(pl_module.device) if self.oracle_factory is not None else None
        self._parts: dict[str, list[torch.Tensor]] = {"index": [], "label": [], "predicted": [], "group": []}

    @torch.no_grad()
    def consume(self, batch: GeneratedBatch, pl_module) -> None:
        images, labels = batch.images, batch.labels
        if self.view is not None:
            images = self.view(images)
        predicted = self.reference(images.to(pl_module.device)).argmax(1).cpu()
        groups = self.oracle(images, labels).cpu() if self.oracle is not None else torch.full_like(labels, -1)
        for key, value in (("index", batch.ids), ("label", labels), ("predicted", predicted),
                           ("group", groups)):
            self._parts[key].append(value.cpu().long())

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        local = {k: torch.cat(v) if v else torch.zeros(0, dtype=torch.long) for k, v in self._parts.items()}
        _, self.per_sample = gather_by_index(local.pop("index"), local)
        self.statistics = block_statistics(self.per_sample["label"], self.per_sample["predicted"],
                                           self.per_sample["group"], self.real_counts)

    def block_scores(self, filter_scores: dict[str, torch.Tensor]) -> BlockScores:
        """The block's per-sample results (after generation), with the filters' scores gathered beside them."""
        return BlockScores(self.per_sample["label"], self.per_sample["predicted"], self.per_sample["group"],
                           dict(filter_scores))
