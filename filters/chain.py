"""A chain of filter steps applied to a whole generated block: each step keeps some of the survivors of the previous.

A scorer's step drops the bottom ``ratio`` of its scores, within each class by default so that filtering keeps the
class balance: the bottom ``ratio`` of the samples (``mode="quantile"``, a count) or the samples whose score lies in
the bottom ``ratio`` of the class's [min, max] score range (``mode="range"``, the appendix's bins of the CLIP score
range). A selector's step keeps exactly what it selects. The generation stage scores every sample once, on the rank
that generated it; ``select_block`` applies the chain to the gathered scores and returns the final keep mask and a
JSON-friendly report.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import torch

from common.errors import ConfigError

from .base import FilterContext, FilterStep, Scorer, Selector, check_mode, check_ratio

HISTOGRAM_BINS = 20
#: scores this close (relative to the class's score range) to the range threshold count as on it, so a hand-made
#: 0.3 of [0, 10] keeps the score 3 despite 0.3 * 10 = 3.0000000000000004 in floats
RANGE_TOLERANCE = 1e-9


def _num_kept(n: int, ratio: float) -> int:
    # round first: (1 - 0.7) * 10 is 3.0000000000000004 in floats and must keep 3, not 4
    return min(n, math.ceil(round((1.0 - ratio) * n, 9)))


def _top_indices(scores: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """The k candidates with the highest scores; equal scores go to the lower index (deterministic)."""
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order[:k]]


def _above_range_threshold(scores: np.ndarray, candidates: np.ndarray, ratio: float) -> np.ndarray:
    """The candidates whose score is at least min + ratio * (max - min) of the candidates' finite scores."""
    values = scores[candidates]
    finite = values[np.isfinite(values)]
    if ratio == 0.0 or finite.size == 0:
        return candidates if ratio == 0.0 else candidates[values == np.inf]
    low, high = float(finite.min()), float(finite.max())
    threshold = low + ratio * (high - low) - RANGE_TOLERANCE * (high - low)
    return candidates[values >= threshold]


def select_keep(scores: torch.Tensor, labels: torch.Tensor, ratio: float, per_class: bool = True,
                mode: Literal["quantile", "range"] = "quantile") -> torch.Tensor:
    """Boolean mask of the samples kept in every class c (or among all N without ``per_class``).

    ``quantile``: the ceil((1 - ratio) * n_c) highest scores. ``range``: the scores at or above
    min + ratio * (max - min) of the class's finite scores (the count kept depends on how the scores spread).
    NaN scores count as the lowest (as -inf); ratio 0 keeps everything. Pure function of its inputs.
    """
    ratio = check_ratio(ratio, "select_keep")
    mode = check_mode(mode, "select_keep")
    scores_np = scores.detach().cpu().double().numpy().reshape(-1)
    labels_np = labels.detach().cpu().numpy().reshape(-1)
    if scores_np.shape != labels_np.shape:
        raise ConfigError(f"scores {scores_np.shape} and labels {labels_np.shape} must both be (N,)")
    scores_np = np.where(np.isnan(scores_np), -np.inf, scores_np)
    keep = np.zeros(scores_np.shape[0], dtype=bool)
    groups = [np.flatnonzero(labels_np == c) for c in np.unique(labels_np)] if per_class else [np.arange(len(keep))]
    for members in groups:
        if mode == "range":
            keep[_above_range_threshold(scores_np, members, ratio)] = True
        else:
            keep[_top_indices(scores_np, members, _num_kept(len(members), ratio))] = True
    return torch.from_numpy(keep)


def _histogram(scores: np.ndarray) -> dict[str, Any]:
    finite = scores[np.isfinite(scores)]
    counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS)
    return {"counts": counts.tolist(), "edges": edges.tolist(), "num_nonfinite": int((~np.isfinite(scores)).sum())}


def _per_class_counts(labels: torch.Tensor, num_classes: int) -> list[int]:
    return torch.bincount(labels.long().cpu(), minlength=num_classes).tolist()


def _counts_report(labels: torch.Tensor, keep: torch.Tensor, num_classes: int) -> dict[str, Any]:
    return {
        "input": int(len(keep)),
        "kept": int(keep.sum()),
        "dropped": int((~keep).sum()),
        "kept_per_class": _per_class_counts(labels[keep], num_classes),
        "dropped_per_class": _per_class_counts(labels[~keep], num_classes),
    }


def _scorer_report(scorer: Scorer, scores: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor,
                   num_classes: int) -> dict[str, Any]:
    scores_np = scores.double().numpy()
    finite = scores_np[np.isfinite(scores_np)]
    return {
        "ratio": scorer.ratio,
        "per_class": scorer.per_class,
        "mode": scorer.mode,
        **_counts_report(labels, keep, num_classes),
        "score_mean": float(finite.mean()) if finite.size else None,
        "score_histogram": _histogram(scores_np),
    }


def _unique_name(name: str, taken: dict[str, Any]) -> str:
    candidate, suffix = name, 2
    while candidate in taken:
        candidate, suffix = f"{name}_{suffix}", suffix + 1
    return candidate


def filter_names(filters: list[FilterStep]) -> list[str]:
    """Unique report names of a filter chain, in order (``uncertainty``, ``uncertainty_2``, ...), over every step."""
    names: dict[str, None] = {}
    for filt in filters:
        names[_unique_name(filt.name, names)] = None
    return list(names)


def _selection(selector: Selector, name: str, labels: torch.Tensor, context: FilterContext) -> torch.Tensor:
    """The selector's keep mask, checked: bool, one per sample it was given."""
    keep = selector.select(labels, context)
    if not isinstance(keep, torch.Tensor) or keep.dtype != torch.bool or tuple(keep.shape) != (len(labels),):
        got = f"{keep.dtype} {tuple(keep.shape)}" if isinstance(keep, torch.Tensor) else type(keep).__name__
        raise RuntimeError(f"{type(selector).__name__}.select ({name!r}) must return a bool mask of shape "
                           f"({len(labels)},), one per sample it was given; got {got}")
    return keep.cpu()


def select_block(
    filters: list[FilterStep], scores: dict[str, torch.Tensor], labels: torch.Tensor, context: FilterContext
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Apply the filter chain to a whole block whose samples were scored beforehand.

    ``scores`` maps each scorer's name (``filter_names`` of the whole chain) to its score of every sample (N,);
    selectors select here, from the context restricted to the survivors. Each step keeps some of the survivors of the
    previous one. Returns the keep mask over all N samples and a report: ``{"filters": {name: {input, kept, dropped,
    kept_per_class, dropped_per_class}, plus ratio, per_class, mode, score_mean, score_histogram for a scorer},
    "filter_input", "filter_kept", "filter_dropped"}``.
    Every step's ``validate`` runs on the whole block first, so user mistakes surface before anything is selected.
    """
    n = len(labels)
    labels = labels.long().cpu()
    if tuple(context.sample_ids.shape) != (n,):
        raise ConfigError(f"a block of {n} labels needs context.sample_ids of shape ({n},), "
                          f"got {tuple(context.sample_ids.shape)}")
    for filt in filters:
        filt.validate(context)
    num_classes = max(len(context.class_names), int(labels.max()) + 1 if n else 0)
    survivors = torch.arange(n)
    per_filter: dict[str, Any] = {}
    for filt, name in zip(filters, filter_names(filters)):
        sub_labels = labels[survivors]
        none_left = torch.zeros(0, dtype=torch.bool)
        if isinstance(filt, Selector):
            sub_context = replace(context, sample_ids=context.sample_ids[survivors],
                                  subgroups=None if context.subgroups is None else context.subgroups[survivors])
            keep = _selection(filt, name, sub_labels, sub_context) if len(survivors) else none_left
            per_filter[name] = _counts_report(sub_labels, keep, num_classes)
        elif isinstance(filt, Scorer):
            if name not in scores or tuple(scores[name].shape) != (n,):
                raise RuntimeError(f"no score of every sample for filter {name!r} (got {sorted(scores)})")
            sub_scores = scores[name].detach().cpu().double()[survivors]
            keep = (select_keep(sub_scores, sub_labels, filt.ratio, filt.per_class, filt.mode) if len(survivors)
                    else none_left)
            per_filter[name] = _scorer_report(filt, sub_scores, sub_labels, keep, num_classes)
        else:
            raise TypeError(f"filter {name!r} is a {type(filt).__name__}: a filter step subclasses filters.Scorer or "
                            "filters.Selector (docs/extending.md)")
        survivors = survivors[keep]
    keep_mask = torch.zeros(n, dtype=torch.bool)
    keep_mask[survivors] = True
    report = {
        "filters": per_filter,
        "filter_input": int(n),
        "filter_kept": int(keep_mask.sum()),
        "filter_dropped": int(n - keep_mask.sum()),
    }
    return keep_mask, report
