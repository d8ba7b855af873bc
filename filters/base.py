"""One interface for every quality filter of generated samples (DESIGN.md section 3 "Filtering", paper 3.2, app. C).

A filter gives every sample a score (higher = keep); the bottom ``ratio`` of the scores is dropped, within
each class by default so that filtering keeps the class balance. Filters chain: each one scores only the
survivors of the previous one. ``apply_filters`` returns the final keep mask and a JSON-friendly report.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from common.errors import ConfigError

HISTOGRAM_BINS = 20


@dataclass
class FilterContext:
    """What a filter may need besides the images: the loop fills it once per generation.

    ``sample_ids`` are the generated samples' ids (aligned with the images a filter receives);
    ``previous_classifier`` is the classifier trained in generation ``generation - 1`` (None if there is none).
    """

    generation: int
    class_names: list[str]
    previous_classifier: nn.Module | None
    sample_ids: torch.Tensor
    device: str = "cpu"
    block_dir: str | None = None


def check_ratio(ratio: Any, owner: str) -> float:
    """``ratio`` as a float in [0, 1], or a ConfigError naming ``owner``."""
    try:
        value = float(ratio)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(ratio, bool) or not 0.0 <= value <= 1.0:
        raise ConfigError(
            f"{owner}.ratio must be a number in [0, 1] (the fraction of samples dropped), got {ratio!r}; "
            "the paper uses 0.1 for MNIST, 0.3 for CIFAR and 0.6 for Hard ImageNet"
        )
    return value


def _num_kept(n: int, ratio: float) -> int:
    # round first: (1 - 0.7) * 10 is 3.0000000000000004 in floats and must keep 3, not 4
    return min(n, math.ceil(round((1.0 - ratio) * n, 9)))


def _top_indices(scores: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """The k candidates with the highest scores; equal scores go to the lower index (deterministic)."""
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order[:k]]


def select_keep(scores: torch.Tensor, labels: torch.Tensor, ratio: float, per_class: bool = True) -> torch.Tensor:
    """Boolean mask keeping the ceil((1 - ratio) * n_c) highest scores of every class c (or of all N).

    NaN scores count as the lowest. Pure function of its inputs.
    """
    ratio = check_ratio(ratio, "select_keep")
    scores_np = scores.detach().cpu().double().numpy().reshape(-1)
    labels_np = labels.detach().cpu().numpy().reshape(-1)
    if scores_np.shape != labels_np.shape:
        raise ConfigError(f"scores {scores_np.shape} and labels {labels_np.shape} must both be (N,)")
    scores_np = np.where(np.isnan(scores_np), -np.inf, scores_np)
    keep = np.zeros(scores_np.shape[0], dtype=bool)
    groups = [np.flatnonzero(labels_np == c) for c in np.unique(labels_np)] if per_class else [np.arange(len(keep))]
    for members in groups:
        keep[_top_indices(scores_np, members, _num_kept(len(members), ratio))] = True
    return torch.from_numpy(keep)


class SampleFilter(ABC):
    """Scores generated samples; the loop keeps the top ``1 - ratio`` of them (per class when ``per_class``)."""

    #: short name used in the report and the logs
    name: str = "filter"

    def __init__(self, ratio: float, per_class: bool = True) -> None:
        self.ratio = check_ratio(ratio, type(self).__name__)
        self.per_class = bool(per_class)

    def validate(self, context: FilterContext) -> None:
        """Cheap checks of the user's inputs for this generation, run on the whole block before any scoring.

        The default has nothing to check; filters that read user files or need models override it.
        """
        return None

    @abstractmethod
    def score(self, images: torch.Tensor, labels: torch.Tensor, context: FilterContext) -> torch.Tensor:
        """Scores (N,) float for uint8 images (N, C, H, W) with their labels (N,); higher = keep."""

    def select(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Keep mask from scores; the default drops the bottom ``ratio``."""
        return select_keep(scores, labels, self.ratio, self.per_class)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ratio={self.ratio}, per_class={self.per_class})"


def _histogram(scores: np.ndarray) -> dict[str, Any]:
    finite = scores[np.isfinite(scores)]
    counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS)
    return {"counts": counts.tolist(), "edges": edges.tolist(), "num_nonfinite": int((~np.isfinite(scores)).sum())}


def _per_class_counts(labels: torch.Tensor, num_classes: int) -> list[int]:
    return torch.bincount(labels.long().cpu(), minlength=num_classes).tolist()


def _filter_report(
    filt: SampleFilter, scores: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor, num_classes: int
) -> dict[str, Any]:
    scores_np = scores.double().numpy()
    finite = scores_np[np.isfinite(scores_np)]
    return {
        "ratio": filt.ratio,
        "per_class": filt.per_class,
        "input": int(len(keep)),
        "kept": int(keep.sum()),
        "dropped": int((~keep).sum()),
        "kept_per_class": _per_class_counts(labels[keep], num_classes),
        "dropped_per_class": _per_class_counts(labels[~keep], num_classes),
        "score_mean": float(finite.mean()) if finite.size else None,
        "score_histogram": _histogram(scores_np),
    }


def _unique_name(name: str, taken: dict[str, Any]) -> str:
    candidate, suffix = name, 2
    while candidate in taken:
        candidate, suffix = f"{name}_{suffix}", suffix + 1
    return candidate


def apply_filters(
    filters: list[SampleFilter], images: torch.Tensor, labels: torch.Tensor, context: FilterContext
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Run ``filters`` in order, each on the survivors of the previous one.

    Returns the keep mask over all N samples and a report: ``{"filters": {name: {kept, dropped,
    kept_per_class, dropped_per_class, score_histogram, ...}}, "filter_input", "filter_kept", "filter_dropped"}``.
    Every filter's ``validate`` runs on the whole block first, so user mistakes surface before any model runs.
    """
    n = images.shape[0]
    labels = labels.long().cpu()
    if images.ndim != 4 or labels.shape != (n,) or tuple(context.sample_ids.shape) != (n,):
        raise ConfigError(
            f"filters need images (N, C, H, W), labels (N,) and context.sample_ids (N,); got {tuple(images.shape)}, "
            f"{tuple(labels.shape)} and {tuple(context.sample_ids.shape)}"
        )
    for filt in filters:
        filt.validate(context)
    num_classes = max(len(context.class_names), int(labels.max()) + 1 if n else 0)
    survivors = torch.arange(n)
    per_filter: dict[str, Any] = {}
    for filt in filters:
        sub_context = replace(context, sample_ids=context.sample_ids[survivors])
        sub_labels = labels[survivors]
        if len(survivors):
            scores = filt.score(images[survivors], sub_labels, sub_context).detach().cpu().double().reshape(-1)
        else:
            scores = torch.zeros(0, dtype=torch.float64)
        if scores.shape != (len(survivors),):
            raise RuntimeError(
                f"{type(filt).__name__}.score returned {tuple(scores.shape)}, expected ({len(survivors)},)"
            )
        keep = filt.select(scores, sub_labels) if len(survivors) else torch.zeros(0, dtype=torch.bool)
        per_filter[_unique_name(filt.name, per_filter)] = _filter_report(filt, scores, sub_labels, keep, num_classes)
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
