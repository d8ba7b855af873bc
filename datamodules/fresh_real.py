"""The ``fresh`` data regime's real data: every generation trains on n real samples it has never seen before.

He, Xu and Cheng ("Golden ratio weighting prevents model collapse", 2025) mix each generation's synthetic data with
n NEW real samples. The real training split is then a held pool, dealt out stratified by class: generation t gets
the t-th run of k_c samples of every class c (k_c: the class's share of n, largest remainder), so every generation's
real data has the pool's class proportions and no real sample is used by two generations.
"""

from __future__ import annotations

import torch

from common.samples import Sample, make_sample
from datamodules.base import LabelledSplit


def per_class_quota(labels: torch.Tensor, per_generation: int) -> torch.Tensor:
    """k_c: real samples of class c per generation, proportional to the pool's class counts and summing to
    ``per_generation`` (largest remainder; ties to the lower class)."""
    counts = torch.bincount(labels.long()).double()
    exact = counts / counts.sum() * per_generation
    quota = torch.floor(exact).long()
    remainder = exact - quota
    order = sorted(range(len(counts)), key=lambda c: (-float(remainder[c]), c))
    for c in order[: per_generation - int(quota.sum())]:
        quota[c] += 1
    return quota


def fresh_pool_problem(labels: torch.Tensor, per_generation: int, generations: int) -> str | None:
    """Why a pool of ``labels`` cannot give ``generations + 1`` generations (0 included) ``per_generation`` fresh real
    samples each, or None when it can."""
    if per_generation < 1:
        return f"data.regime.fresh_real_per_generation must be a positive number of samples, got {per_generation}"
    quota = per_class_quota(labels, per_generation)
    counts = torch.bincount(labels.long(), minlength=len(quota))
    short = [c for c in range(len(quota)) if int(quota[c]) * (generations + 1) > int(counts[c])]
    if not short:
        return None
    needed = max(int(quota[c]) * (generations + 1) - int(counts[c]) for c in short)
    return (f"data.regime.policy 'fresh' draws {per_generation} new real samples for each of the {generations + 1} "
            f"generations (0-{generations}), but the real training pool has {len(labels)} samples and class "
            f"{short[0]} runs short by {needed}: lower data.regime.fresh_real_per_generation to at most "
            f"{max_fresh_per_generation(labels, generations)} or loop.generations, or use a larger training split")


def max_fresh_per_generation(labels: torch.Tensor, generations: int) -> int:
    """The largest ``per_generation`` the pool can serve for generations 0..``generations``."""
    best, low, high = 0, 1, len(labels) // (generations + 1)
    while low <= high:
        middle = (low + high) // 2
        quota = per_class_quota(labels, middle)
        counts = torch.bincount(labels.long(), minlength=len(quota))
        if bool((quota * (generations + 1) <= counts).all()):
            best, low = middle, middle + 1
        else:
            high = middle - 1
    return best


def fresh_indices(labels: torch.Tensor, per_generation: int, generation: int) -> torch.Tensor:
    """Sorted pool indices of generation ``generation``'s real data: the ``generation``-th run of k_c samples of every
    class c, in pool order. Disjoint across generations."""
    labels = labels.long()
    quota = per_class_quota(labels, per_generation)
    chosen = []
    for c in range(len(quota)):
        members = torch.nonzero(labels == c).flatten()
        k = int(quota[c])
        chosen.append(members[generation * k:(generation + 1) * k])
    return torch.cat(chosen).sort().values


class SubsetSplit(LabelledSplit):
    """The samples ``indices`` of a split, in that order (in-memory images gathered once; lazy ones read through)."""

    def __init__(self, split: LabelledSplit, indices: torch.Tensor) -> None:
        self.split, self.indices = split, indices.long()
        self.labels, self.groups = split.labels[self.indices], split.groups[self.indices]
        self.images = None if split.images is None else split.images[self.indices]

    def __getitem__(self, index: int) -> Sample:
        if self.images is not None:
            return make_sample(self.images[index], self.labels[index], self.groups[index])
        return self.split[int(self.indices[index])]

    def viewed(self, view) -> LabelledSplit:
        return SubsetSplit(self.split.viewed(view), self.indices)
