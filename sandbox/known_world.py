"""A known world for the product loop: tiny images whose subgroup and features are drawn from stated distributions.

Every image is 1 x ``side`` x ``side`` uint8. Its first pixel is the subgroup's marker (64: subgroup "a", 192:
subgroup "b"), read back from any image, generated ones included, by thresholding at 128: the card's pixel-subgroup
mechanism, so u_t and subgroup-aware filters need no learned oracle. Every other pixel is a feature drawn
independently from a normal N(128, ``feature_sd``^2) rounded to the nearest integer (and clipped to [0, 255]), the
same in every class and subgroup: each (class, feature pixel) is an independent replicate of a one-dimensional
Gaussian, and each class an independent replicate of a two-subgroup population. With ``traits: true`` every feature
pixel is instead a binary trait marked like the subgroup (64 or 192), with exactly ``b_per_class`` high values per
class in the training split, each pixel permuted independently: every (class, pixel) is then a two-type population
with the subgroup's exact share, what the Wright-Fisher checks count (``pixel_b_shares``).

The training split has exactly ``train_per_class`` images per class, ``b_per_class`` of them of subgroup "b";
validation and test splits have ``eval_per_cell`` images per (class, subgroup) cell. With ``data.regime.policy:
fresh`` the training split is the pool that fresh real samples are drawn from: make it (generations + 1) times the
per-generation draw.
"""

from __future__ import annotations

import math

import torch
from scipy.stats import norm

from common.errors import ConfigError
from common.image_views import ImageView
from common.seeds import seeded_generator
from datamodules.base import ImageSplit, RealDataSource
from datamodules.facts import DatasetFacts

#: the first pixel's value for each subgroup, in subgroup order
MARKERS = (64, 192)
GROUP_NAMES = ("a", "b")
FEATURE_MEAN = 128.0


def subgroups_from_marker(images: torch.Tensor) -> torch.Tensor:
    """Subgroup of each image (N, 1, H, W): 0 ("a") when its first pixel is below 128, else 1 ("b")."""
    return (images.flatten(1)[:, 0] >= 128).long()


def pixel_b_shares(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(L, H * W) float64: within every class, the share of images whose pixel j is high (>= 128): pixel 0 is the
    subgroup, the others the traits of a ``traits`` world."""
    high = (images.flatten(1) >= 128).double()
    sums = torch.zeros((num_classes, high.shape[1]), dtype=torch.float64).index_add_(0, labels.long(), high)
    counts = torch.bincount(labels.long(), minlength=num_classes).double()
    return sums / counts.unsqueeze(1)


def feature_pixels(images: torch.Tensor) -> torch.Tensor:
    """(N, H * W - 1) float64: every pixel but the marker."""
    return images.flatten(1)[:, 1:].double()


def rounded_normal_moments(mean: float, sd: float) -> tuple[float, float]:
    """Exact mean and variance of round(N(mean, sd^2)) clipped to [0, 255] (the stored features), by summing the
    probability of every uint8 value."""
    values = torch.arange(256, dtype=torch.float64)
    upper = torch.from_numpy(norm.cdf((values.numpy() + 0.5 - mean) / sd))
    lower = torch.from_numpy(norm.cdf((values.numpy() - 0.5 - mean) / sd))
    upper[-1], lower[0] = 1.0, 0.0
    probability = upper - lower
    first = float((probability * values).sum())
    return first, float((probability * (values - first) ** 2).sum())


class KnownWorld(RealDataSource):
    """Args:
    num_classes: classes (each an independent replicate).
    train_per_class: training images per class (the fresh regime's pool per class).
    b_per_class: how many of a class's training images are of subgroup "b".
    side: images are 1 x side x side (side^2 - 1 feature pixels).
    feature_sd: standard deviation of every feature pixel, in uint8 units, before rounding.
    traits: feature pixels are binary traits with the subgroup's exact share per class instead of Gaussian.
    eval_per_cell: validation and test images per (class, subgroup) cell.
    seed: seeds the drawing of every split.
    """

    def __init__(self, num_classes: int = 100, train_per_class: int = 20, b_per_class: int = 6, side: int = 2,
                 feature_sd: float = 16.0, traits: bool = False, eval_per_cell: int = 2, seed: int = 0) -> None:
        self.num_classes_ = int(num_classes)
        self.train_per_class, self.b_per_class = int(train_per_class), int(b_per_class)
        self.side, self.feature_sd, self.traits = int(side), float(feature_sd), bool(traits)
        self.eval_per_cell, self.seed = int(eval_per_cell), int(seed)
        self._facts = DatasetFacts(
            name="known_world", class_names=tuple(f"c{c}" for c in range(max(self.num_classes_, 1))),
            image_shape=(1, max(self.side, 1), max(self.side, 1)), classifier_view=ImageView(max(self.side, 1)),
            group_names=GROUP_NAMES, subgroups="pixels", subgroup_noun="marker")

    @property
    def facts(self) -> DatasetFacts:
        return self._facts

    def validate(self) -> None:
        if self.num_classes_ < 2:
            raise ConfigError(f"known_world: num_classes must be >= 2, got {self.num_classes_}")
        if self.side < 2:
            raise ConfigError(f"known_world: side must be >= 2 (one marker and at least 3 feature pixels), "
                              f"got {self.side}")
        if not 0 <= self.b_per_class <= self.train_per_class or self.train_per_class < 1:
            raise ConfigError(f"known_world: need 0 <= b_per_class <= train_per_class and train_per_class >= 1, got "
                              f"b_per_class={self.b_per_class}, train_per_class={self.train_per_class}")
        if self.eval_per_cell < 1:
            raise ConfigError(f"known_world: eval_per_cell must be >= 1, got {self.eval_per_cell}")
        if not (math.isfinite(self.feature_sd) and 0 < self.feature_sd <= 16):
            raise ConfigError(f"known_world: feature_sd must be in (0, 16] (8 standard deviations from 128 to 0 and "
                              f"255, so clipping stays negligible while refitted variances wander), got "
                              f"{self.feature_sd}")

    @property
    def b_share(self) -> float:
        """pi_0: the share of subgroup "b" in every class of the training split."""
        return self.b_per_class / self.train_per_class

    def feature_moments(self) -> tuple[float, float]:
        """(mean, variance) of one stored feature pixel."""
        return rounded_normal_moments(FEATURE_MEAN, self.feature_sd)

    def subgroups_from_pixels(self, images: torch.Tensor) -> torch.Tensor:
        return subgroups_from_marker(images)

    def draw(self, counts: list[list[int]], stream: int) -> ImageSplit:
        """A split with ``counts[c][g]`` images of class c and subgroup g, in a seeded random order."""
        generator = seeded_generator(self.seed, stream)
        labels = torch.cat([torch.full((sum(row),), c) for c, row in enumerate(counts)])
        groups = torch.cat([torch.repeat_interleave(torch.arange(len(row)), torch.tensor(row)) for row in counts])
        order = torch.randperm(len(labels), generator=generator)
        labels, groups = labels[order], groups[order]
        features = torch.randn((len(labels), self.side * self.side - 1), generator=generator, dtype=torch.float64)
        pixels = (FEATURE_MEAN + self.feature_sd * features).round().clamp(0, 255)
        markers = torch.tensor(MARKERS, dtype=torch.float64)[groups].unsqueeze(1)
        if self.traits:  # every feature pixel: the class's subgroup column, permuted within the class
            pixels = markers.repeat(1, pixels.shape[1])
            for c in range(len(counts)):
                members = torch.nonzero(labels == c).flatten()
                for j in range(pixels.shape[1]):
                    shuffled = members[torch.randperm(len(members), generator=generator)]
                    pixels[members, j] = markers[shuffled, 0]
        images = torch.cat([markers, pixels], dim=1).to(torch.uint8).reshape(-1, 1, self.side, self.side)
        return ImageSplit(images, labels, groups)

    def load(self) -> dict[str, ImageSplit]:
        self.validate()
        train = [[self.train_per_class - self.b_per_class, self.b_per_class]] * self.num_classes_
        balanced = [[self.eval_per_cell] * 2] * self.num_classes_
        return {"train": self.draw(train, 0), "val": self.draw(balanced, 1), "test": self.draw(balanced, 2)}
