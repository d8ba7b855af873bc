"""The torchmetrics form of the subgroup fairness metrics (metrics/fairness.py defines them): per-batch counts,
summed across DDP ranks, the metrics computed once from all of them. Its own file so that what reads the functions
alone (the report) does not import torchmetrics.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric

from metrics.fairness import check_sizes, metrics_from_counts, subgroup_counts


class SubgroupFairness(Metric):
    """Accumulates the (class x subgroup) counts over batches; ``compute()`` equals ``subgroup_metrics`` on all
    of the data seen. States are integer counts reduced by sum, so the result is exact under DDP.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    correct: torch.Tensor
    total: torch.Tensor
    n_correct_all: torch.Tensor
    n_all: torch.Tensor

    def __init__(self, num_classes: int, num_groups: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_sizes(num_classes, num_groups)
        self.num_classes = int(num_classes)
        self.num_groups = int(num_groups)
        shape = (self.num_classes, self.num_groups)
        self.add_state("correct", torch.zeros(shape, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(shape, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_correct_all", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_all", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor, groups: torch.Tensor) -> None:
        """Add one batch: preds (N,) indices or (N, L) logits, target (N,), groups (N,) with -1 = unknown."""
        correct, total, n_correct_all, n_all = subgroup_counts(preds, target, groups, self.num_classes, self.num_groups)
        self.correct += correct
        self.total += total
        self.n_correct_all += n_correct_all
        self.n_all += n_all

    def merge_state(self, incoming_state: dict[str, Any] | Metric) -> None:
        """Add another metric's counts (torchmetrics 1.9 keeps serving a stale cached ``compute()`` otherwise)."""
        super().merge_state(incoming_state)
        self._computed = None

    def compute(self) -> dict[str, torch.Tensor]:
        """The same dict as ``subgroup_metrics`` on every sample seen (across ranks once synced)."""
        return metrics_from_counts(self.correct, self.total, self.n_correct_all, self.n_all)
