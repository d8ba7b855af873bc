"""Test-stage callback: per-subgroup fairness of the classifier on the real test set (MEO, DI, MD, ranked accuracy).

It holds the ``SubgroupFairness`` torchmetrics Metric (integer counts, summed across DDP ranks), feeds it the
logits ``test_step`` returns, and logs the scalars; ``results`` keeps the full dict for the result row.
"""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import Callback

from metrics.fairness import PAIRWISE_MEASURES, READING_SUFFIXES
from metrics.subgroup_fairness_metric import SubgroupFairness

#: accuracy, then every reading's pairwise measures (meo, di, md, meo_eq2, di_eq3; suffixes _class, _cells)
LOGGED_METRICS = ("acc", *(f"{m}{suffix}" for suffix in READING_SUFFIXES.values() for m in PAIRWISE_MEASURES))


class SubgroupFairnessEvaluation(Callback):
    def __init__(self, num_classes: int, num_groups: int) -> None:
        self.num_classes, self.num_groups = int(num_classes), int(num_groups)
        self.metric = SubgroupFairness(self.num_classes, max(self.num_groups, 1))
        #: the metrics dict of the last test run (the same on every rank)
        self.results: dict[str, torch.Tensor] = {}

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self.metric = self.metric.to(pl_module.device)
        self.metric.reset()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.metric.update(outputs.detach(), batch["label"], batch["subgroup"])

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        results = self.metric.compute()
        self.results = {k: v.detach().cpu() for k, v in results.items()}
        for key in LOGGED_METRICS:
            if not torch.isfinite(results[key]):  # DI_eq3 is -inf where a zero rate meets a positive one
                continue
            pl_module.log(f"test/{key}", results[key].float(), sync_dist=False, rank_zero_only=True)
        if self.num_groups > 0:
            for k, value in enumerate(results["acc_rank"]):
                pl_module.log(f"test/acc_rank_{k + 1}", value.float(), rank_zero_only=True)
            for g, value in enumerate(results["group_tpr"]):
                pl_module.log(f"test/subgroup_acc_{g}", value.float(), rank_zero_only=True)
