"""Named samples and batches: an absent mask is an absent key, and the default collate keeps the names."""

from __future__ import annotations

import torch
from torch.utils.data import default_collate

from common.samples import make_batch, make_sample


def test_a_sample_without_a_mask_has_no_mask_key_and_collates_to_a_named_batch():
    samples = [make_sample(torch.full((3, 2, 2), i, dtype=torch.uint8), i % 2, -1) for i in range(3)]
    assert set(samples[0]) == {"image", "label", "subgroup"}
    batch = default_collate(samples)
    assert set(batch) == {"image", "label", "subgroup"}
    assert batch["image"].shape == (3, 3, 2, 2) and batch["image"][:, 0, 0, 0].tolist() == [0, 1, 2]
    assert batch["label"].tolist() == [0, 1, 0] and batch["subgroup"].tolist() == [-1, -1, -1]


def test_a_sample_with_a_mask_collates_its_masks():
    mask = torch.zeros(1, 2, 2, dtype=torch.bool)
    mask[0, 0, 0] = True
    batch = default_collate([make_sample(torch.zeros(3, 2, 2, dtype=torch.uint8), 1, 0, mask)] * 2)
    assert set(batch) == {"image", "label", "subgroup", "mask"}
    assert batch["mask"].shape == (2, 1, 2, 2) and batch["mask"].dtype == torch.bool and int(batch["mask"].sum()) == 2


def test_a_gathered_batch_names_its_tensors_and_leaves_out_an_absent_mask():
    images, labels, groups = torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([3, 4]), torch.tensor([0, 1])
    batch = make_batch(images, labels, groups)
    assert set(batch) == {"image", "label", "subgroup"} and batch["label"] is labels and batch["subgroup"] is groups
    assert "mask" in make_batch(images, labels, groups, torch.ones(2, 1, 2, 2, dtype=torch.bool))
