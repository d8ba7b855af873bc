"""Prediction writer: each rank writes the samples it generated to one safetensors shard.

Shards are merged by sample index (``read_block``), so a block is identical for any number of ranks.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from safetensors.torch import load_file, save

from common.io import atomic_write_bytes

SHARD_PATTERN = "shard_rank*.safetensors"


class ShardWriter(BasePredictionWriter):
    def __init__(self, out_dir: str | os.PathLike) -> None:
        super().__init__(write_interval="batch")
        self.out_dir = Path(out_dir)
        self._chunks: dict[str, list[torch.Tensor]] = {"index": [], "label": [], "image": []}

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        for key in self._chunks:
            self._chunks[key].append(prediction[key].detach().cpu())

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        tensors = {k: torch.cat(v) if v else torch.empty(0) for k, v in self._chunks.items()}
        path = self.out_dir / f"shard_rank{trainer.global_rank:03d}.safetensors"
        atomic_write_bytes(path, save({k: v.contiguous() for k, v in tensors.items()}))
        self._chunks = {k: [] for k in self._chunks}


def read_block(shard_dir: str | os.PathLike, expected: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of all shards ordered by sample index; checks that no sample is missing or repeated."""
    parts = [load_file(str(p)) for p in sorted(Path(shard_dir).glob(SHARD_PATTERN))]
    parts = [p for p in parts if p["index"].numel()]
    if not parts:
        raise RuntimeError(f"no generated shard in {shard_dir}")
    index = torch.cat([p["index"] for p in parts]).long()
    order = torch.argsort(index)
    if not torch.equal(index[order], torch.arange(expected)):
        raise RuntimeError(f"generated shards in {shard_dir} do not cover samples 0..{expected - 1} exactly once")
    images = torch.cat([p["image"] for p in parts])[order]
    labels = torch.cat([p["label"] for p in parts])[order].long()
    return images, labels
