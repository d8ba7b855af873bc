"""Statistics of one generated block (the paper's section 5): data quality q_t and unbalanced generation u_t.

* q_t (``quality_q``): the share of a block that a reference classifier trained on the real data assigns to the
  class the generator was asked for (1 = every image recognisably its class).
* u_t (``imbalance_u``): within each class, the total-variation distance between the block's subgroup distribution
  and the real training set's, averaged over classes weighted by the block's class counts. Computed within classes
  because "subgroup i" need not mean the same thing across classes (CIFAR-20's fine classes) and because a pooled
  histogram lets one class's over-produced colour cancel another's. 0 = the block reproduces every class's subgroup
  mix; 1 = disjoint subgroups.
* ``majority_gain``: the signed companion of u_t: the class-weighted mean of (block share of the class's most
  frequent real subgroup - its real share). Positive = the generator over-produces each class's majority (bias
  amplification), negative = it evens the subgroups out.

Everything works on (class x subgroup) count matrices, so per-rank counts can be summed before the statistics are
taken (exact under DDP). Subgroup -1 (unknown: no stroke found, no oracle) is left out of the counts.
"""

from __future__ import annotations

import torch


def subgroup_counts(labels: torch.Tensor, groups: torch.Tensor, num_classes: int, num_groups: int) -> torch.Tensor:
    """(L, G) int64 counts of the samples with a known subgroup (groups >= 0)."""
    labels, groups = labels.long().cpu(), groups.long().cpu()
    known = groups >= 0
    flat = labels[known] * num_groups + groups[known]
    return torch.bincount(flat, minlength=num_classes * num_groups).reshape(num_classes, num_groups)


def _shares(block: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Per-class subgroup shares of block and real data and the class weights, over classes present in both."""
    block, real = block.double(), real.double()
    block_n, real_n = block.sum(1), real.sum(1)
    usable = (block_n > 0) & (real_n > 0)
    if not bool(usable.any()):
        return None
    block_share = block[usable] / block_n[usable, None]
    real_share = real[usable] / real_n[usable, None]
    weights = block_n[usable] / block_n[usable].sum()
    return block_share, real_share, weights


def imbalance_u(block_counts: torch.Tensor, real_counts: torch.Tensor) -> float | None:
    """u_t: class-weighted mean over classes of TV(block subgroup distribution, real subgroup distribution).

    ``block_counts`` and ``real_counts`` are (L, G) counts; None when no class has subgroups in both.
    """
    shares = _shares(block_counts, real_counts)
    if shares is None:
        return None
    block_share, real_share, weights = shares
    distance = 0.5 * (block_share - real_share).abs().sum(1)
    return float((weights * distance).sum())


def majority_gain(block_counts: torch.Tensor, real_counts: torch.Tensor) -> float | None:
    """Class-weighted mean of (block share - real share) of each class's most frequent real subgroup (signed)."""
    shares = _shares(block_counts, real_counts)
    if shares is None:
        return None
    block_share, real_share, weights = shares
    majority = real_share.argmax(1, keepdim=True)
    gain = block_share.gather(1, majority) - real_share.gather(1, majority)
    return float((weights * gain.squeeze(1)).sum())


def quality_q(predicted: torch.Tensor, requested: torch.Tensor) -> float | None:
    """q_t: share of samples whose predicted class is the requested one; None for an empty block."""
    if len(requested) == 0:
        return None
    return float((predicted.long().cpu() == requested.long().cpu()).double().mean())


def block_statistics(labels: torch.Tensor, predicted: torch.Tensor, groups: torch.Tensor,
                     real_counts: torch.Tensor | None, suffix: str = "") -> dict[str, float | None]:
    """q_t, u_t and majority_gain of a block from its per-sample requested labels, reference predictions and oracle
    subgroups (-1 = unknown); u_t and majority_gain are None without real subgroup counts. Keys get ``suffix``."""
    stats = {"quality_q": quality_q(predicted, labels), "imbalance_u": None, "majority_gain": None}
    if real_counts is not None:
        num_classes, num_groups = real_counts.shape
        counts = subgroup_counts(labels, groups, num_classes, num_groups)
        stats["imbalance_u"] = imbalance_u(counts, real_counts)
        stats["majority_gain"] = majority_gain(counts, real_counts)
    return {f"{key}{suffix}": value for key, value in stats.items()}
