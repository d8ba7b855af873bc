"""Device-resident training data: for in-memory datasets whose real split and stack fit a device-memory budget.

Colorized MNIST and CIFAR-20 are tens to hundreds of MB as uint8: held on the GPU once per stage, every batch is one
gather there (a ``common.samples.Batch``: image, label, subgroup), with no per-batch host-to-device copy and no
DataLoader in between; the classifier normalises the uint8 batch on the device as always. The batches are those of the
loader path (the same ``MixedBatchSampler`` indices, in the same order), so results do not depend on which path ran.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from common.samples import Batch, make_batch
from datamodules.mixing import MixedBatchSampler


class DeviceResidentBatches:
    """An iterable of ``Batch`` dicts (images uint8, labels, subgroups) gathered from tensors held on ``device``.

    It exposes ``batch_sampler`` (and its epoch sampler as ``sampler``) like a DataLoader, so Lightning sets the epoch
    before every epoch and a stage resumed mid-epoch can skip the batches already trained on.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor,
                 batch_sampler: MixedBatchSampler, device: torch.device) -> None:
        self.images = images.to(device)
        self.labels = labels.long().to(device)
        self.groups = groups.long().to(device)
        self.batch_sampler = batch_sampler
        self.sampler = batch_sampler.sampler
        self.device = device

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[Batch]:
        for indices in self.batch_sampler:
            on_device = indices.to(self.device, non_blocking=True)
            yield make_batch(self.images[on_device], self.labels[on_device], self.groups[on_device])


def resident_bytes(real_images: torch.Tensor, stack) -> int:
    """Bytes the real images and the whole stack take as uint8."""
    stack_bytes = len(stack) * int(torch.tensor(stack.image_shape).prod()) if stack is not None and len(stack) else 0
    return real_images.numel() + stack_bytes
