"""A bias mitigation inside the loop, a selector: keep, within each class, a subset of the block with a target
subgroup mix.

The paper's conclusion asks for sampling that increases q_t and reduces u_t. This filter uses the subgroup oracle
the loop already runs for u_t (the stroke colour for Colorized MNIST, the learned fine-class oracle for CIFAR-20,
the subclass oracle for Breeds) and keeps, within each class, the largest subset whose subgroup counts follow the
target shares: the real training distribution of that class (``target: real``, so the stack stops drifting from the
real data) or equal shares (``target: uniform``, so the stack de-biases). A subset can only rebalance the subgroups
the generator produced: when a class lacks one, the target is matched among the others (keeping nothing of the class
would starve the next generator of it). Within a subgroup it keeps the first samples in id order (generation order is
random). Samples whose subgroup cannot be read (-1) are dropped.
"""

from __future__ import annotations

from typing import Literal

import torch

from common.errors import ConfigError

from .base import FilterContext, Needs, Selector

TARGETS = ("real", "uniform")


def balanced_counts(available: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The most samples per subgroup, at most ``available``, in the proportions ``target`` among the subgroups that are
    available, rounded to the nearest count (within half a sample of the exact proportion in every subgroup; a
    rarely produced subgroup keeps its sample instead of being floored away)."""
    target = torch.where(available > 0, target.double(), 0.0)
    if float(target.sum()) == 0:
        return torch.zeros_like(available)
    target = target / target.sum()
    needed = target > 0
    if not bool(needed.any()):
        return torch.zeros_like(available)
    scale = float((available[needed].double() / target[needed]).min())
    return torch.round(scale * target).long().clamp(max=available)


def balanced_subset(labels: torch.Tensor, subgroups: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Keep mask: within each class c, the first ``balanced_counts`` samples of each subgroup for ``targets[c]``."""
    labels, subgroups = labels.long(), subgroups.long()
    keep = torch.zeros(len(labels), dtype=torch.bool)
    num_groups = targets.shape[1]
    for c in torch.unique(labels).tolist():
        members = labels == c
        available = torch.stack([(members & (subgroups == g)).sum() for g in range(num_groups)])
        quota = balanced_counts(available, targets[c])
        for g in range(num_groups):
            cell = torch.nonzero(members & (subgroups == g)).flatten()
            keep[cell[: int(quota[g])]] = True
    return keep


class SubgroupBalanceFilter(Selector):
    """Keeps, per class, the largest subset whose subgroup mix matches the target (``real`` or ``uniform``)."""

    name = "subgroup_balance"
    needs = Needs(subgroups=True)

    def __init__(self, target: Literal["real", "uniform"] = "real") -> None:
        if target not in TARGETS:
            raise ConfigError(f"SubgroupBalanceFilter.target must be one of {TARGETS}, got {target!r}: 'real' keeps "
                              "each class's real subgroup mix, 'uniform' equal shares")
        self.target = target

    def select(self, labels: torch.Tensor, context: FilterContext) -> torch.Tensor:
        """Keep mask of ``balanced_subset`` for the target, from the oracle's subgroup of every sample."""
        if context.subgroups is None or context.real_subgroup_counts is None:
            raise ConfigError("SubgroupBalanceFilter needs the subgroup of every generated sample and the real "
                              "subgroup counts: use it on a dataset with subgroups and a subgroup oracle")
        counts = context.real_subgroup_counts.double()
        targets = counts if self.target == "real" else torch.ones_like(counts)
        return balanced_subset(labels, context.subgroups, targets)

    def __repr__(self) -> str:
        return f"SubgroupBalanceFilter(target={self.target!r})"
