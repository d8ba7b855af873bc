"""Labelled samples as every split gives them (``common.samples.Sample`` dicts), from tensors of any dtype, for tests
that feed a training step or an evaluation callback without a real dataset."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from common.samples import Sample, make_sample


class NamedSamples(Dataset):
    """Sample i is ``{"image": images[i], "label": labels[i], "subgroup": subgroups[i]}``, plus ``"mask": masks[i]``
    when masks are given."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, subgroups: torch.Tensor,
                 masks: torch.Tensor | None = None) -> None:
        self.images, self.labels, self.subgroups, self.masks = images, labels, subgroups, masks

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Sample:
        mask = None if self.masks is None else self.masks[index]
        return make_sample(self.images[index], self.labels[index], self.subgroups[index], mask)


def labelled_loader(images: torch.Tensor, labels: torch.Tensor, subgroups: torch.Tensor, batch_size: int,
                    masks: torch.Tensor | None = None, **loader_options) -> DataLoader:
    """Batches of ``NamedSamples`` collated by the default collate (a dict of stacked tensors)."""
    return DataLoader(NamedSamples(images, labels, subgroups, masks), batch_size=batch_size, **loader_options)
