"""The contract every real dataset follows, so the loop and the mixer never care which dataset it is."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from common.errors import ConfigError
from common.image_views import ImageView
from common.samples import Sample, make_sample
from datamodules.facts import DatasetFacts


class LabelledSplit(Dataset):
    """A split whose labels and subgroups are known without decoding any image.

    ``images`` is the uint8 (N, C, H, W) tensor of an in-memory split (batches are one gather) and None for a split
    decoded lazily from files (Hard ImageNet, Living-17); ``labels`` and ``groups`` are int64 (N,), subgroup -1 =
    unknown. A sample is a ``common.samples.Sample`` dict (``"image"``, ``"label"``, ``"subgroup"``, and ``"mask"``
    only for a split with masks).
    """

    images: torch.Tensor | None
    labels: torch.Tensor
    groups: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def viewed(self, view: ImageView) -> LabelledSplit:
        """This split as ``view`` sees it (a generator or FID at another resolution); samples without masks."""
        raise NotImplementedError(f"{type(self).__name__} has no views")


@dataclass
class ImageSplit(LabelledSplit):
    """A split held in memory as uint8 tensors; normalisation happens later, on the batch.

    Samples are ``common.samples.Sample`` dicts (image uint8 (C, H, W), label, subgroup; -1 where unknown).
    """

    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    groups: torch.Tensor  # int64 (N,)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        n = self.images.shape[0]
        if self.labels.shape != (n,) or self.groups.shape != (n,):
            raise ValueError("labels and groups must be 1-D with one entry per image")
        self.labels = self.labels.long()
        self.groups = self.groups.long()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> Sample:
        return make_sample(self.images[index], self.labels[index], self.groups[index])

    def viewed(self, view: ImageView) -> LabelledSplit:
        """Itself when ``view`` leaves its images unchanged (the in-memory fast path), else resized on access."""
        if view.is_identity_for(*self.images.shape[-2:]):
            return self
        return ViewedSplit(self, view)


class ViewedSplit(LabelledSplit):
    """An in-memory split seen through another view, each image resized when it is read (the stored images only
    exist at their own size, e.g. a generator trained at 512 on CIFAR's 32 px images)."""

    def __init__(self, split: ImageSplit, view: ImageView) -> None:
        self.split, self.view = split, view
        self.images = None  # resized per sample, never materialised
        self.labels, self.groups = split.labels, split.groups

    def __getitem__(self, index: int) -> Sample:
        return make_sample(self.view(self.split.images[index]), self.labels[index], self.groups[index])

    def viewed(self, view: ImageView) -> LabelledSplit:
        return self.split.viewed(view)


class CellSplit(LabelledSplit):
    """The samples of a split whose subgroup is known, labelled by their (class, subgroup) cell: class * G + subgroup
    (what the learned subgroup oracle trains on); samples of subgroup -1 are dropped. Samples are
    ``Sample`` dicts whose label is the cell, without masks.

    Works on any ``LabelledSplit``: an in-memory split's images are gathered once (batches stay one tensor gather), a
    lazily decoded split's are decoded by that split when a sample is read.
    """

    def __init__(self, split: LabelledSplit, num_groups: int) -> None:
        if num_groups < 1:
            raise ValueError(f"cells need subgroups: num_groups must be >= 1, got {num_groups}")
        keep = torch.nonzero(split.groups >= 0).flatten()
        self.split, self.indices, self.num_groups = split, keep, int(num_groups)
        self.labels = split.labels[keep] * self.num_groups + split.groups[keep]
        self.groups = split.groups[keep]
        if split.images is None or len(keep) == len(split.labels):  # all kept: no copy (a memory map stays one)
            self.images = split.images
        else:
            self.images = split.images[keep]

    def __getitem__(self, index: int) -> Sample:
        image = self.images[index] if self.images is not None else self.split[int(self.indices[index])]["image"]
        return make_sample(image, self.labels[index], self.groups[index])

    def viewed(self, view: ImageView) -> LabelledSplit:
        """The cells of the underlying split as ``view`` sees it."""
        return CellSplit(self.split.viewed(view), self.num_groups)


class RealDataSource(ABC):
    """A real dataset: its card (``facts``: classes, subgroups, image shape, ...) and its train/val/test splits.

    ``validate()`` must be cheap and raise ``common.errors.ConfigError`` for anything the user has to fix
    (missing root, bad probabilities) before any work starts; ``load()`` does the actual reading.
    """

    @property
    @abstractmethod
    def facts(self) -> DatasetFacts:
        """The dataset's card: everything the loop and the report know about it, stated here once."""

    # shorthands of the card
    @property
    def name(self) -> str:
        return self.facts.name

    @property
    def fairness_reading(self) -> str:
        """The fairness reading the report leads with ("pooled", "per_class" or "cells"; all three are computed)."""
        return self.facts.fairness_reading

    @property
    def num_classes(self) -> int:
        return self.facts.num_classes

    @property
    def num_groups(self) -> int:
        """Number of subgroups G (0 when the dataset has no known subgroups)."""
        return self.facts.num_groups

    @property
    def class_names(self) -> list[str]:
        return list(self.facts.class_names)

    @property
    def group_names(self) -> list[str]:
        return list(self.facts.group_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the uint8 images this source yields: what the classifiers see."""
        return tuple(self.facts.image_shape)

    @property
    def classifier_view(self) -> ImageView:
        """How the classifiers see an image. Stored generated images reach the classifiers (and everything that runs
        a classifier on them) through it."""
        return self.facts.classifier_view

    @property
    def has_masks(self) -> bool:
        """Samples carry object masks (a 4th element): the loop runs the spurious-cue ablations at test time."""
        return self.facts.has_masks

    def check_stack_shape(self, shape: tuple[int, int, int]) -> None:
        """ConfigError unless generated images of ``shape`` can be stored and shown to every consumer.

        The default keeps generated images at the source's own shape (the in-memory datasets: no resize anywhere).
        """
        if tuple(shape) != tuple(self.image_shape):
            raise ConfigError(
                f"the generator produces images of shape {list(shape)} but {self.name} stores generated images at its "
                f"own shape {list(self.image_shape)}: set the generator's output to {list(self.image_shape)} "
                "(model.init_args.image_shape, or stack_resolution for Stable Diffusion)"
            )

    def validate(self) -> None:
        """Raise ConfigError for user mistakes; must not read the whole dataset."""
        return None

    def subgroups_from_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """The subgroup of any image, generated ones included, read from its pixels (Colorized MNIST's stroke
        colour): what u_t reads where the card's ``subgroups`` is "pixels"; such a source must override this."""
        raise NotImplementedError(f"{type(self).__name__}'s subgroups cannot be read from the pixels")

    @abstractmethod
    def load(self) -> dict[str, LabelledSplit]:
        """Return {'train', 'val', 'test'} splits of (image uint8, label, subgroup[, mask]) samples."""
