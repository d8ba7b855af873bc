"""Lightning callback: Hard ImageNet spurious-cue ablations during ``trainer.test`` (paper section 4.4, Figure 8).

Counts are summed over batches and DDP ranks (the unpadded evaluation sampler gives every test image to exactly
one rank), so the result equals a single-process evaluation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback

from metrics.ablation import ABLATION_KINDS, ablation_counts, ablation_summary


class AblationEvaluation(Callback):
    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.results: dict[str, Any] = {}

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._correct = torch.zeros(len(ABLATION_KINDS), self.num_classes, dtype=torch.long)
        self._total = torch.zeros(self.num_classes, dtype=torch.long)
        self._fallbacks = 0

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if "mask" not in batch:
            raise RuntimeError("AblationEvaluation needs test batches with object masks (a \"mask\" key): a dataset "
                               "whose card has masks")
        images, labels, masks = batch["image"], batch["label"], batch["mask"]
        with torch.no_grad():
            correct, total, fallbacks = ablation_counts(lambda x: pl_module(x).float(), images, labels, masks,
                                                        self.num_classes)
        self._correct += correct
        self._total += total
        self._fallbacks += fallbacks

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        counts = torch.cat([self._correct.flatten(), self._total, torch.tensor([self._fallbacks])])
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            counts = counts.to(pl_module.device)
            dist.all_reduce(counts)
            counts = counts.cpu()
        n = self._correct.numel()
        correct = counts[:n].view_as(self._correct)
        total = counts[n : n + self.num_classes]
        self.results = ablation_summary(correct, total, int(counts[-1]))
        for kind, value in self.results["ablation_acc"].items():
            pl_module.log(f"test/ablation_acc_{kind}", float(value), rank_zero_only=True)
