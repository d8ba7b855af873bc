"""Subgroup fairness metrics of the paper (MEO, DI, MD, ranked subgroup accuracy), paper eqs. 2-5.

Everything is derived from one (class x subgroup) count matrix of correct and total predictions, so the
functional form (``subgroup_metrics``) and the torchmetrics form (``SubgroupFairness``,
metrics/subgroup_fairness_metric.py) share one core (``metrics_from_counts``) and the Metric is exact under DDP: its
states are integer counts reduced by sum. This file needs no torchmetrics (the report reads these functions).

Definitions over a set of groups with rates P_1..P_K (K present groups, C(K,2) unordered pairs):

* MEO = 1 - mean over unordered pairs i < j of |P_i - P_j|                      (bounded reading of eq. 2)
* DI  = 1 - mean over unordered pairs i < j of (1 - min / max); 0/0 counts as equal (bounded reading of eq. 3)
* MD  = max - min of the rates                                                  (eq. 4)
* MEO_eq2 = 1 - (1 / C(K,2)) * sum over ordered pairs i != j of |P_i - P_j| = 1 - 2 (1 - MEO)   (eq. 2 as printed)
* DI_eq3  = 1 - (1 / C(K,2)) * sum over ordered pairs i != j of |P_i / P_j - 1|: asymmetric, unbounded below;
  0/0 counts as equal, x/0 with x > 0 gives -inf                                (eq. 3 as printed)

Three readings of "the groups" (acc[c, g] = accuracy of class c, subgroup g):

* pooled (``meo``, ...): the G subgroup indices, P_g = TPR_g = accuracy of subgroup g pooled over classes;
* per_class (``meo_class``, ...): within each class over its present subgroups, averaged over the classes with at
  least two present subgroups (for CIFAR-20/100 "subgroup i" means nothing across classes);
* cells (``meo_cells``, ...): every present (class, subgroup) cell is a group, P = acc[c, g] (L x G groups: the
  convention of the CIFAR-20/100 code the paper cites, where the group is the fine label).

acc_rank[k] = mean over classes of the (k+1)-th smallest acc[c, :], worst first; only classes in which all G
subgroups are present count (eq. 5).

Subgroups with no sample (in the data, or in a class for the per-class forms) are left out of the pairs:
an absent subgroup has no accuracy, and counting it as 0 would invent a disparity. With fewer than two
present groups nothing can differ, so MEO = DI = 1 and MD = 0 (the per-class averages use the same
values when no class has two present subgroups). Samples with subgroup -1 (unknown, e.g. synthetic) count
only towards ``acc``.
"""

from __future__ import annotations

import torch

from common.errors import ConfigError

UNKNOWN_GROUP = -1


def check_sizes(num_classes: int, num_groups: int) -> None:
    if int(num_classes) < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}; set it to the dataset's number of classes")
    if int(num_groups) < 0:
        raise ConfigError(f"num_groups must be >= 0, got {num_groups}; use 0 for a dataset without known subgroups")


def _predicted_classes(preds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class indices from indices (N,) or logits/probabilities (N, L)."""
    if preds.ndim == 2:
        if preds.shape[1] != num_classes:
            raise ConfigError(
                f"logits have {preds.shape[1]} columns but num_classes={num_classes}; "
                "pass logits of shape (N, num_classes) or class indices of shape (N,)"
            )
        return preds.argmax(dim=1)
    if preds.ndim == 1:
        if preds.is_floating_point() or preds.is_complex():
            raise ConfigError(
                f"1-D preds must be integer class indices, got dtype {preds.dtype}; "
                "pass .long() indices or logits of shape (N, num_classes)"
            )
        return preds.long()
    raise ConfigError(f"preds must be class indices (N,) or logits (N, L), got shape {tuple(preds.shape)}")


def subgroup_counts(
    preds: torch.Tensor, target: torch.Tensor, groups: torch.Tensor, num_classes: int, num_groups: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Count matrices of one batch: ``(correct[L, G], total[L, G], n_correct_all, n_all)``, all int64.

    ``n_correct_all`` / ``n_all`` include subgroup -1 samples; the matrices do not. One ``bincount`` per
    matrix over the flat index ``class * G + group``: no Python loop over samples.
    """
    check_sizes(num_classes, num_groups)
    predicted = _predicted_classes(preds, num_classes)
    if target.ndim != 1 or groups.ndim != 1 or not (predicted.shape[0] == target.shape[0] == groups.shape[0]):
        raise ConfigError(
            f"preds {tuple(preds.shape)}, target {tuple(target.shape)} and groups {tuple(groups.shape)} must "
            "describe the same N samples: preds (N,) or (N, L), target (N,), groups (N,)"
        )
    if target.is_floating_point() or groups.is_floating_point():
        raise ConfigError("target and groups must be integer tensors; convert them with .long()")
    target, groups = target.long(), groups.long()
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise ConfigError(
            f"target holds values outside [0, {num_classes}): min {int(target.min())}, max {int(target.max())}; "
            "check num_classes against the dataset"
        )
    if groups.numel() and (int(groups.min()) < UNKNOWN_GROUP or int(groups.max()) >= num_groups):
        raise ConfigError(
            f"groups holds values outside [-1, {num_groups}): min {int(groups.min())}, max {int(groups.max())}; "
            "check num_groups against the dataset (use -1 for an unknown subgroup)"
        )

    is_correct = predicted == target
    known = groups != UNKNOWN_GROUP
    cells = num_classes * num_groups
    flat = target[known] * num_groups + groups[known]
    total = torch.bincount(flat, minlength=cells).reshape(num_classes, num_groups)
    correct = torch.bincount(flat[is_correct[known]], minlength=cells).reshape(num_classes, num_groups)
    return correct, total, is_correct.sum(), torch.tensor(target.numel(), device=target.device)


#: the pairwise measures of one reading, in the order ``_pairwise_fairness`` returns them
PAIRWISE_MEASURES = ("meo", "di", "md", "meo_eq2", "di_eq3")
#: the suffix of each reading's keys (pooled keys carry none, so rows written before the other readings still read)
READING_SUFFIXES = {"pooled": "", "per_class": "_class", "cells": "_cells"}


def _pairwise_fairness(rates: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
    """MEO, DI, MD and the printed MEO_eq2, DI_eq3 of each row of ``rates`` (B, G), over present entries only.

    Returns (B,) tensors keyed by ``PAIRWISE_MEASURES``; rows with fewer than two present entries give
    MEO = DI = MEO_eq2 = DI_eq3 = 1, MD = 0.
    """
    num_groups = rates.shape[-1]
    i, j = torch.triu_indices(num_groups, num_groups, offset=1, device=rates.device)
    rate_i, rate_j = rates[:, i], rates[:, j]
    pair_used = present[:, i] & present[:, j]
    n_pairs = pair_used.sum(-1).clamp(min=1)
    zero = torch.zeros((), dtype=rates.dtype, device=rates.device)

    gap = torch.where(pair_used, (rate_i - rate_j).abs(), zero)
    high, low = torch.maximum(rate_i, rate_j), torch.minimum(rate_i, rate_j)
    ratio = torch.where(high > 0, low / high, torch.ones_like(high))  # 0/0: both zero, counted as equal
    ratio_loss = torch.where(pair_used, 1 - ratio, zero)
    # eq. 3 as printed: both orders of every pair, |P_i / P_j - 1| + |P_j / P_i - 1|; 0/0 counts as equal (0) and
    # x/0 with x > 0 is +inf (low = 0 < high): the printed measure is unbounded below
    inf = torch.tensor(float("inf"), dtype=rates.dtype, device=rates.device)
    printed_ratio_loss = torch.where(low > 0, high / low - 1 + (1 - low / high), torch.where(high > 0, inf, zero))
    printed_ratio_loss = torch.where(pair_used, printed_ratio_loss, zero)

    meo = 1 - gap.sum(-1) / n_pairs
    measures = {"meo": meo, "di": 1 - ratio_loss.sum(-1) / n_pairs, "meo_eq2": 1 - 2 * gap.sum(-1) / n_pairs,
                "di_eq3": 1 - printed_ratio_loss.sum(-1) / n_pairs}
    if num_groups == 0:  # amax/amin refuse an empty dimension
        return {**measures, "md": torch.zeros_like(meo)}
    spread = torch.where(present, rates, -inf).amax(-1) - torch.where(present, rates, inf).amin(-1)
    return {**measures, "md": torch.where(present.sum(-1) >= 2, spread, zero)}


def reading_metrics(group_acc: torch.Tensor) -> dict[str, torch.Tensor]:
    """The per_class and cells readings from the (L, G) cell accuracies alone (NaN = an empty cell).

    What ``metrics_from_counts`` returns under ``*_class`` and ``*_cells``; the report uses it to add these readings
    to result rows written before they existed (a row keeps ``group_acc``, not the counts the pooled TPRs need).
    """
    group_acc = group_acc.to(torch.float32)
    present = ~group_acc.isnan()
    rates = torch.nan_to_num(group_acc, nan=0.0)
    per_class = _pairwise_fairness(rates, present)
    classes_with_pairs = present.sum(1) >= 2
    out: dict[str, torch.Tensor] = {}
    for measure, values in per_class.items():
        if bool(classes_with_pairs.any()):
            out[f"{measure}_class"] = values[classes_with_pairs].mean()
        else:
            out[f"{measure}_class"] = values.new_tensor(0.0 if measure == "md" else 1.0)
    cells = _pairwise_fairness(rates.reshape(1, -1), present.reshape(1, -1))
    out.update({f"{measure}_cells": values[0] for measure, values in cells.items()})
    return out


def metrics_from_counts(
    correct: torch.Tensor, total: torch.Tensor, n_correct_all: torch.Tensor, n_all: torch.Tensor
) -> dict[str, torch.Tensor]:
    """All fairness metrics from the (class x subgroup) counts; the core of both the function and the Metric.

    Args:
        correct: (L, G) correct predictions per (class, subgroup).
        total: (L, G) samples per (class, subgroup).
        n_correct_all: correct predictions over all samples, subgroup -1 included.
        n_all: number of samples, subgroup -1 included.

    Returns float32 tensors: scalars ``acc`` (NaN without samples) and, for each reading (no suffix = pooled,
    ``_class``, ``_cells``), ``meo``, ``di``, ``md``, ``meo_eq2``, ``di_eq3`` (e.g. ``di_eq3_cells``);
    ``acc_rank`` (G,) worst first (NaN when no class has all G subgroups); ``group_tpr`` (G,) and ``group_acc``
    (L, G), NaN where there is no sample; ``group_count`` (L, G) int64.
    Subgroups absent from the data are left out of every pairwise metric (see the module docstring).
    """
    dtype = torch.float32
    correct, total = correct.to(dtype), total.long()
    total_f = total.to(dtype)
    num_groups = total.shape[1]

    present_cells = total > 0
    group_acc = correct / total_f  # 0/0 -> NaN marks an empty cell
    group_total = total.sum(0)
    group_present = group_total > 0
    group_tpr = correct.sum(0) / group_total.to(dtype)

    pooled = {key: values[0] for key, values in _pairwise_fairness(group_tpr[None], group_present[None]).items()}
    readings = reading_metrics(group_acc)

    complete_classes = present_cells.all(1)
    if bool(complete_classes.any()):
        acc_rank = group_acc[complete_classes].sort(dim=1).values.mean(0)
    else:
        acc_rank = torch.full((num_groups,), float("nan"), dtype=dtype, device=total.device)

    n_all_f = torch.as_tensor(n_all, device=total.device).to(dtype)
    acc = torch.as_tensor(n_correct_all, device=total.device).to(dtype) / n_all_f
    return {
        "acc": acc,
        **pooled,
        **readings,
        "acc_rank": acc_rank,
        "group_acc": group_acc,
        "group_tpr": group_tpr,
        "group_count": total,
    }


def subgroup_metrics(
    preds: torch.Tensor, target: torch.Tensor, groups: torch.Tensor, num_classes: int, num_groups: int
) -> dict[str, torch.Tensor]:
    """Fairness metrics of one set of predictions (see the module docstring for the definitions).

    Args:
        preds: class indices (N,) or logits (N, L).
        target: true classes (N,).
        groups: subgroup ids (N,) in [0, G); -1 = unknown, counted in ``acc`` only.
        num_classes: L.
        num_groups: G.

    Returns the dict of ``metrics_from_counts``. Subgroups absent from the data entirely are left out of
    MEO/DI/MD (and out of the per-class forms for the classes they are absent from).
    """
    return metrics_from_counts(*subgroup_counts(preds, target, groups, num_classes, num_groups))
