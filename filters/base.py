"""One interface for every quality filter of generated samples (paper section 3.2 and appendix C).

A filter gives every sample a score (higher = keep); the bottom ``ratio`` is dropped, within each class by default
so that filtering keeps the class balance: the bottom ``ratio`` of the samples (``mode="quantile"``, a count) or the
samples whose score lies in the bottom ``ratio`` of the class's [min, max] score range (``mode="range"``, the
appendix's bins of the CLIP score range). Filters chain: each one selects among the
survivors of the previous one. A sample's score never depends on the other samples, so the generation stage scores
every sample once, on the rank that generated it, and ``select_block`` applies the chain to the gathered scores;
it returns the final keep mask and a JSON-friendly report.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from common.errors import ConfigError

HISTOGRAM_BINS = 20
SELECTION_MODES = ("quantile", "range")
#: scores this close (relative to the class's score range) to the range threshold count as on it, so a hand-made
#: 0.3 of [0, 10] keeps the score 3 despite 0.3 * 10 = 3.0000000000000004 in floats
RANGE_TOLERANCE = 1e-9


@dataclass
class FilterContext:
    """What a filter may need besides the images: the generation stage fills it for every batch it scores.

    ``sample_ids`` are the generated samples' ids (aligned with the images a filter receives; a batch of consecutive
    ids whose first one identifies it); ``previous_classifier`` is the classifier trained in generation
    ``generation - 1`` (None when no filter needs it). At selection, ``subgroups`` holds the subgroup the oracle read
    from every sample (-1 = unknown) and ``real_subgroup_counts`` the real training data's (L, G) counts.
    """

    generation: int
    class_names: list[str]
    sample_ids: torch.Tensor
    previous_classifier: nn.Module | None = None
    device: str | torch.device = "cpu"
    subgroups: torch.Tensor | None = None
    real_subgroup_counts: torch.Tensor | None = None


def check_ratio(ratio: Any, owner: str) -> float:
    """``ratio`` as a float in [0, 1), or a ConfigError naming ``owner`` (1 would drop every sample)."""
    try:
        value = float(ratio)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(ratio, bool) or not 0.0 <= value < 1.0:
        raise ConfigError(
            f"{owner}.ratio must be a number in [0, 1) (the fraction of samples dropped; 1 would drop them all), "
            f"got {ratio!r}; "
            "the paper uses 0.1 for MNIST, 0.3 for CIFAR and 0.6 for Hard ImageNet"
        )
    return value


def _num_kept(n: int, ratio: float) -> int:
    # round first: (1 - 0.7) * 10 is 3.0000000000000004 in floats and must keep 3, not 4
    return min(n, math.ceil(round((1.0 - ratio) * n, 9)))


def check_mode(mode: Any, owner: str) -> str:
    """``mode`` if it is a selection mode, or a ConfigError naming ``owner`` and the choices."""
    if mode not in SELECTION_MODES:
        raise ConfigError(
            f"{owner}.mode must be one of {list(SELECTION_MODES)}, got {mode!r}: 'quantile' drops the bottom ratio of "
            "the samples, 'range' the samples whose score lies in the bottom ratio of the [min, max] score range"
        )
    return mode


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


class SampleFilter(ABC):
    """Scores generated samples; the loop drops the bottom ``ratio`` of them (per class when ``per_class``), counted
    in samples (``mode="quantile"``) or in the score range (``mode="range"``)."""

    #: short name used in the report and the logs
    name: str = "filter"
    #: scored when the block is selected, from the context (sample ids, subgroups), not from the images
    scored_at_selection: bool = False
    #: needs every sample's subgroup (``FilterContext.subgroups``): the dataset's pixel oracle or the learned one
    needs_subgroups: bool = False
    #: needs the previous generation's classifier (``FilterContext.previous_classifier``)
    needs_previous_classifier: bool = False
    #: scores with MC dropout: the classifier it runs must have a dropout module with p > 0
    needs_mc_dropout: bool = False

    def __init__(self, ratio: float, per_class: bool = True,
                 mode: Literal["quantile", "range"] = "quantile") -> None:
        self.ratio = check_ratio(ratio, type(self).__name__)
        self.per_class = bool(per_class)
        self.mode = check_mode(mode, type(self).__name__)

    def check_available(self) -> None:
        """ConfigError, before any work, when what the filter needs (weights, files) is missing. Default: nothing."""
        return None

    def check_dataset(self, class_names: list[str]) -> None:
        """ConfigError, before any work, when the dataset cannot give the filter what it asks for (e.g. a prompt
        placeholder it has no value for). Default: nothing."""
        return None

    def review_pending(self, generation: int) -> str | None:
        """For a hand-reviewed filter whose reviewer has not written this generation's list yet: where to write it.
        None when nothing is pending (the default)."""
        return None

    def validate(self, context: FilterContext) -> None:
        """Cheap checks of the user's inputs for this generation, run on the whole block before it is selected.

        The default has nothing to check; filters that read user files override it.
        """
        return None

    @abstractmethod
    def score(self, images: torch.Tensor, labels: torch.Tensor, context: FilterContext) -> torch.Tensor:
        """Scores (N,) float for uint8 images (N, C, H, W) with their labels (N,); higher = keep."""

    def select(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Keep mask from scores; the default drops the bottom ``ratio`` (by ``mode``)."""
        return select_keep(scores, labels, self.ratio, self.per_class, self.mode)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ratio={self.ratio}, per_class={self.per_class}, mode={self.mode!r})"


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
        "mode": filt.mode,
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


def filter_names(filters: list[SampleFilter]) -> list[str]:
    """Unique report names of a filter chain, in order (``uncertainty``, ``uncertainty_2``, ...)."""
    names: dict[str, None] = {}
    for filt in filters:
        names[_unique_name(filt.name, names)] = None
    return list(names)


def select_block(
    filters: list[SampleFilter], scores: dict[str, torch.Tensor], labels: torch.Tensor, context: FilterContext
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Apply the filter chain to a whole block whose samples were scored beforehand.

    ``scores`` maps each filter's name (``filter_names``) to its score of every sample (N,); filters scored at
    selection (``scored_at_selection``: a reviewer's list, the subgroup balance) are scored here from the context.
    Each filter selects among the survivors of the previous one. Returns the keep mask over all N samples and a
    report: ``{"filters": {name: {kept, dropped, kept_per_class, dropped_per_class, score_histogram, ...}},
    "filter_input", "filter_kept", "filter_dropped"}``.
    Every filter's ``validate`` runs on the whole block first, so user mistakes surface before anything is selected.
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
        if filt.scored_at_selection:
            sub_context = replace(context, sample_ids=context.sample_ids[survivors],
                                  subgroups=None if context.subgroups is None else context.subgroups[survivors])
            sub_scores = filt.score(None, sub_labels, sub_context).detach().cpu().double().reshape(-1)
        else:
            if name not in scores or tuple(scores[name].shape) != (n,):
                raise RuntimeError(f"no score of every sample for filter {name!r} (got {sorted(scores)})")
            sub_scores = scores[name].detach().cpu().double()[survivors]
        keep = filt.select(sub_scores, sub_labels) if len(survivors) else torch.zeros(0, dtype=torch.bool)
        per_filter[name] = _filter_report(filt, sub_scores, sub_labels, keep, num_classes)
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
