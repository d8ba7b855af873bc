"""The two kinds of filter step of generated samples (paper section 3.2 and appendix C), and what each may need.

A ``Scorer`` gives every generated sample a score (higher = keep) while the sample is generated, and the chain drops
the bottom ``ratio`` by that score (CLIP, the previous classifier's MC-dropout uncertainty). A ``Selector`` chooses
which of the samples it is given to keep, once the block is complete, from their ids, labels and subgroups (a
reviewer's reject list, the subgroup balance): it has no score and no ratio. ``filters/chain.py`` applies a chain of
both kinds. What a step needs from the loop is declared once per class, as a ``Needs``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from common.errors import ConfigError

SELECTION_MODES = ("quantile", "range")


@dataclass(frozen=True)
class Needs:
    """What a filter step needs from the loop; the validation refuses a run that cannot give it, before any work.

    ``previous_classifier``: the classifier trained in generation ``generation - 1``
    (``FilterContext.previous_classifier``; a scorer then sees the images as the classifiers do). ``mc_dropout``:
    that classifier must have a dropout module with p > 0 (``quality.filter_classifier``). ``subgroups``: every
    sample's subgroup and the real data's (L, G) subgroup counts (``FilterContext.subgroups`` and
    ``real_subgroup_counts``): a dataset with subgroups and, when its subgroups are not in its pixels, a learned oracle.
    """

    previous_classifier: bool = False
    mc_dropout: bool = False
    subgroups: bool = False

    def __post_init__(self) -> None:
        if self.mc_dropout and not self.previous_classifier:
            raise ValueError("Needs(mc_dropout=True) samples the previous classifier: set previous_classifier=True too")


@dataclass
class FilterContext:
    """What a filter step may need besides the images.

    ``sample_ids`` are the generated samples' ids (aligned with the labels a step receives; for a scorer, a batch of
    consecutive ids whose first one identifies it); ``previous_classifier`` is the classifier trained in generation
    ``generation - 1`` (None when no step needs it). At selection, ``subgroups`` holds the subgroup the oracle read
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


def check_mode(mode: Any, owner: str) -> str:
    """``mode`` if it is a selection mode, or a ConfigError naming ``owner`` and the choices."""
    if mode not in SELECTION_MODES:
        raise ConfigError(
            f"{owner}.mode must be one of {list(SELECTION_MODES)}, got {mode!r}: 'quantile' drops the bottom ratio of "
            "the samples, 'range' the samples whose score lies in the bottom ratio of the [min, max] score range"
        )
    return mode


class FilterStep:
    """One step of the filter chain (``filters:`` in the config): a ``Scorer`` or a ``Selector``."""

    #: short name used in the report, the logs and the scores file
    name: str = "filter"
    #: what the step needs from the loop (checked before any work)
    needs: ClassVar[Needs] = Needs()

    def check_available(self) -> None:
        """ConfigError, before any work, when what the step needs (weights, files) is missing. Default: nothing."""
        return None

    def check_dataset(self, class_names: list[str]) -> None:
        """ConfigError, before any work, when the dataset cannot give the step what it asks for (e.g. a prompt
        placeholder it has no value for). Default: nothing."""
        return None

    def review_pending(self, generation: int) -> str | None:
        """For a hand-reviewed step whose reviewer has not written this generation's list yet: where to write it.
        None when nothing is pending (the default)."""
        return None

    def validate(self, context: FilterContext) -> None:
        """Cheap checks of the user's inputs for this generation, run on the whole block before it is selected.

        The default has nothing to check; steps that read user files override it.
        """
        return None


class Scorer(FilterStep, ABC):
    """Scores each generated sample as it is generated; the chain drops the bottom ``ratio`` of them (per class when
    ``per_class``), counted in samples (``mode="quantile"``) or in the score range (``mode="range"``).

    A sample's score never depends on the other samples, so it is computed once, on the rank that generated it.
    """

    def __init__(self, ratio: float, per_class: bool = True,
                 mode: Literal["quantile", "range"] = "quantile") -> None:
        self.ratio = check_ratio(ratio, type(self).__name__)
        self.per_class = bool(per_class)
        self.mode = check_mode(mode, type(self).__name__)

    @abstractmethod
    def score(self, images: torch.Tensor, labels: torch.Tensor, context: FilterContext) -> torch.Tensor:
        """Scores (N,) float for uint8 images (N, C, H, W) with their labels (N,); higher = keep."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ratio={self.ratio}, per_class={self.per_class}, mode={self.mode!r})"


class Selector(FilterStep, ABC):
    """Chooses which samples to keep, once the block is complete, from their ids, labels and (with
    ``Needs(subgroups=True)``) subgroups; the chain keeps exactly the samples it selects."""

    @abstractmethod
    def select(self, labels: torch.Tensor, context: FilterContext) -> torch.Tensor:
        """Keep mask (N,) bool over the N samples given: ``labels`` (N,) and ``context.sample_ids`` (N,), with
        ``context.subgroups`` (N,) when the step needs subgroups."""
