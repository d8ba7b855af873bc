"""A labelled sample and a batch of them, with names: what every real split yields and every training step reads.

A ``Sample`` is a dict ``{"image": uint8 (C, H, W), "label": int64 (), "subgroup": int64 () (-1 = unknown)}``, plus
``"mask": bool (1, H, W)`` only for a split with object masks (Hard ImageNet): a split without masks leaves the key
out rather than setting it to None, so that the default DataLoader collate, which turns a list of dicts into a dict
of stacked tensors, gives a ``Batch`` with the same keys, ``"mask"`` exactly when the split has masks. Consumers read
``batch["image"]``, never a position (torchgeo's dict samples, anomalib's ``Batch`` and diffusers' ``BaseOutput`` do
the same). Batches gathered with one tensor index (``datamodules/mixing.py``, ``datamodules/device_batches.py``) are
built by ``make_batch``.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

import torch

#: the keys every sample and batch has; ``"mask"`` is there only for a split with masks
KEYS = ("image", "label", "subgroup")


class Sample(TypedDict):
    """One labelled image: uint8 image (C, H, W), int64 label and subgroup (-1 = unknown), optional bool mask."""

    image: torch.Tensor
    label: torch.Tensor
    subgroup: torch.Tensor
    mask: NotRequired[torch.Tensor]


class Batch(TypedDict):
    """B labelled images: uint8 images (B, C, H, W), int64 labels and subgroups (B,), optional bool masks
    (B, 1, H, W)."""

    image: torch.Tensor
    label: torch.Tensor
    subgroup: torch.Tensor
    mask: NotRequired[torch.Tensor]


def make_sample(image: torch.Tensor, label, subgroup, mask: torch.Tensor | None = None) -> Sample:
    """A ``Sample``; ``mask`` None leaves the key out (collates with the default collate)."""
    sample = Sample(image=image, label=torch.as_tensor(label), subgroup=torch.as_tensor(subgroup))
    if mask is not None:
        sample["mask"] = mask
    return sample


def make_batch(images: torch.Tensor, labels: torch.Tensor, subgroups: torch.Tensor,
               masks: torch.Tensor | None = None) -> Batch:
    """A ``Batch`` of tensors already gathered; ``masks`` None leaves the key out."""
    batch = Batch(image=images, label=labels, subgroup=subgroups)
    if masks is not None:
        batch["mask"] = masks
    return batch
