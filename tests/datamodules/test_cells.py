"""The learned subgroup oracle's training data: a split relabelled by (class, subgroup) cell, in memory or lazy."""

from __future__ import annotations

import pytest
import torch

from datamodules.base import CellSplit, ImageSplit
from datamodules.breeds import Living17
from datamodules.generational import GenerationalDataModule, TrainingSpec
from tests.fakes.breeds import write_fake_imagenet_living17


def test_an_in_memory_split_keeps_its_known_subgroups_relabelled_and_stays_one_gather():
    images = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 1, 4, 4).contiguous()
    split = ImageSplit(images, torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([1, -1, 0, 2, 1, -1]))
    cells = CellSplit(split, num_groups=3)
    # the rows the former cell_split kept: subgroup -1 dropped, label = class * G + subgroup
    keep = split.groups >= 0
    assert torch.equal(cells.images, split.images[keep])
    assert cells.labels.tolist() == [1, 6, 2, 4] and cells.groups.tolist() == [1, 0, 2, 1]
    assert len(cells) == 4 and [int(cells[i]["image"][0, 0, 0]) for i in range(4)] == [0, 2, 3, 4]
    with pytest.raises(ValueError, match="num_groups"):
        CellSplit(split, num_groups=0)


def test_a_lazy_split_trains_and_validates_the_oracle_on_cells(tmp_path):
    root = write_fake_imagenet_living17(tmp_path, n_train_per_class=2, n_val_per_class=1, size=16)
    dm = GenerationalDataModule(Living17(root, image_size=12, resize=16, val_fraction=0.5), batch_size=32,
                                eval_batch_size=50)
    batch = next(iter(dm.train_loader(TrainingSpec(32, epoch_seed=0, cells=True))))
    images, labels, groups = batch["image"], batch["label"], batch["subgroup"]
    assert images.shape == (32, 3, 12, 12) and images.dtype == torch.uint8
    assert torch.equal(labels % 4, groups) and int(labels.max()) < 68
    seen = torch.cat([batch["label"] for batch in dm.eval_loader("val", cells=True)])
    assert sorted(seen.tolist()) == list(range(68))  # every (superclass, subclass) cell once
