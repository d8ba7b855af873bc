"""Seeded, stratified splitting shared by the in-memory datasets (Colorized MNIST, CIFAR-20/100).

Everything works on label tensors with a caller-supplied torch generator and without Python loops over samples.
"""

from __future__ import annotations

import torch


def rank_within_class(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random rank (0..n_c-1) of every sample among the samples of its class, computed without a Python loop."""
    n = len(labels)
    shuffled = torch.randperm(n, generator=generator)
    order = shuffled[torch.sort(labels[shuffled], stable=True).indices]  # grouped by class, random within class
    sorted_labels = labels[order]
    class_start = torch.searchsorted(sorted_labels, sorted_labels, right=False)
    rank = torch.empty(n, dtype=torch.long)
    rank[order] = torch.arange(n) - class_start
    return rank


def stratified_split(labels: torch.Tensor, fractions: list[float], generator: torch.Generator) -> list[torch.Tensor]:
    """Split indices per class: part i gets round(fraction_i * n_c) of every class, the last part the rest.

    A part that would round to zero digits of a class still gets one when the class has enough to spare,
    so every class is present in every split. Indices inside each part are sorted (stable source order).
    """
    labels = labels.long()
    rank = rank_within_class(labels, generator)
    class_sizes = torch.bincount(labels)
    bounds = torch.zeros_like(class_sizes)
    parts: list[torch.Tensor] = []
    for fraction in fractions:
        take = torch.round(class_sizes.double() * fraction).long()
        spare = class_sizes - bounds - take > len(fractions)
        take = torch.where((take == 0) & spare, torch.ones_like(take), take)
        upper = torch.minimum(bounds + take, class_sizes)
        in_part = (rank >= bounds[labels]) & (rank < upper[labels])
        parts.append(torch.nonzero(in_part).squeeze(1))
        bounds = upper
    parts.append(torch.nonzero(rank >= bounds[labels]).squeeze(1))
    return parts


def stratified_subsample(labels: torch.Tensor, total: int, generator: torch.Generator) -> torch.Tensor:
    """Sorted indices of ``total`` samples keeping the class shares (largest-remainder rounding)."""
    labels = labels.long()
    if total >= len(labels):
        return torch.arange(len(labels))
    class_sizes = torch.bincount(labels)
    exact = class_sizes.double() * total / len(labels)
    quota = exact.floor().long()
    leftover = total - int(quota.sum())
    quota[torch.argsort(exact - quota, descending=True, stable=True)[:leftover]] += 1
    rank = rank_within_class(labels, generator)
    return torch.nonzero(rank < quota[labels]).squeeze(1)
