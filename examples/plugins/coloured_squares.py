"""A dataset written outside the package: coloured squares from a table, as a researcher's own plug-in would be.

Each image is a black 16 x 16 canvas with one 8 x 8 square in the top ("north") or bottom ("south") half: the
class. The square's hue (crimson, lime or azure) is the subgroup, read back from any image's pixels (so u_t needs
no learned oracle). The table of (class, hue) counts of the training split is an argument, so a skewed table makes
a biased dataset; validation and test splits are balanced over every (class, hue) cell.

Use it with ``PYTHONPATH=examples/plugins python cli.py fit --config examples/plugins/coloured_squares.yaml``
(see docs/extending.md).
"""

from __future__ import annotations

import torch

from common.errors import ConfigError
from common.image_views import ImageView
from datamodules.base import ImageSplit, RealDataSource
from datamodules.facts import DatasetFacts

SIDE = 16
HUES = {"crimson": (220, 20, 60), "lime": (50, 205, 50), "azure": (0, 127, 255)}


def draw_squares(labels: torch.Tensor, hues: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """uint8 (N, 3, 16, 16): an 8 x 8 square of hue ``hues[i]`` in the top (label 0) or bottom (1) half, at a random
    column, with a little pixel noise."""
    images = torch.zeros((len(labels), 3, SIDE, SIDE), dtype=torch.uint8)
    colours = torch.tensor(list(HUES.values()), dtype=torch.uint8)
    columns = torch.randint(0, SIDE - 8 + 1, (len(labels),), generator=generator)
    for i, (label, hue, column) in enumerate(zip(labels.tolist(), hues.tolist(), columns.tolist())):
        top = 0 if label == 0 else SIDE // 2
        images[i, :, top:top + 8, column:column + 8] = colours[hue].view(3, 1, 1)
    noise = torch.randint(0, 16, images.shape, generator=generator, dtype=torch.uint8)
    return images.clamp(max=239) + noise


def hues_from_pixels(images: torch.Tensor) -> torch.Tensor:
    """The hue of each image: the palette colour nearest to its brightest pixels' mean; -1 for a black image."""
    pixels = images.float().flatten(2)  # (N, 3, H*W)
    bright = pixels.amax(dim=1, keepdim=True) > 96
    counts = bright.sum(dim=2)
    mean = (pixels * bright).sum(dim=2) / counts.clamp(min=1)
    palette = torch.tensor(list(HUES.values()), dtype=torch.float32)
    hues = torch.cdist(mean, palette).argmin(dim=1)
    return torch.where(counts.flatten() > 0, hues, torch.full_like(hues, -1))


class ColouredSquares(RealDataSource):
    """Args:
    train_table: training images per (class, hue) cell: 2 rows (north, south) of 3 counts (crimson, lime, azure).
    eval_per_cell: validation and test images per (class, hue) cell.
    seed: seeds the drawing of every split.
    """

    facts = DatasetFacts(name="coloured_squares", class_names=("north", "south"), image_shape=(3, SIDE, SIDE),
                         classifier_view=ImageView(SIDE), group_names=tuple(HUES), subgroups="pixels",
                         subgroup_noun="hue")

    def __init__(self, train_table: list[list[int]] | None = None, eval_per_cell: int = 10, seed: int = 0) -> None:
        self.train_table = [[60, 20, 10], [60, 20, 10]] if train_table is None else [list(r) for r in train_table]
        self.eval_per_cell = eval_per_cell
        self.seed = seed

    def validate(self) -> None:
        if len(self.train_table) != self.num_classes or any(len(r) != self.num_groups for r in self.train_table):
            raise ConfigError(f"coloured_squares: train_table must be {self.num_classes} rows of {self.num_groups} "
                              f"counts (north, south x crimson, lime, azure), got {self.train_table}")
        if any(int(c) != c or c < 1 for r in self.train_table for c in r) or self.eval_per_cell < 1:
            raise ConfigError("coloured_squares: every train_table count and eval_per_cell must be an integer >= 1")

    def subgroups_from_pixels(self, images: torch.Tensor) -> torch.Tensor:
        return hues_from_pixels(images)

    def _split(self, table: list[list[int]], stream: int) -> ImageSplit:
        generator = torch.Generator().manual_seed(self.seed * 1000 + stream)
        cells = [(c, g) for c in range(self.num_classes) for g in range(self.num_groups) for _ in range(table[c][g])]
        order = torch.randperm(len(cells), generator=generator)
        labels = torch.tensor([cells[i][0] for i in order])
        hues = torch.tensor([cells[i][1] for i in order])
        return ImageSplit(draw_squares(labels, hues, generator), labels, hues)

    def load(self) -> dict[str, ImageSplit]:
        self.validate()
        balanced = [[self.eval_per_cell] * self.num_groups for _ in range(self.num_classes)]
        return {"train": self._split(self.train_table, 0), "val": self._split(balanced, 1),
                "test": self._split(balanced, 2)}
