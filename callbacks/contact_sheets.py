"""Generation-stage callback: contact sheets of the raw block, every image captioned with its sample id and class.

A reviewer writes the ids to reject into the manual filter's list (paper appendix C). Rank 0 draws the sheets from
the merged shards once every rank has written its shard, so the sheets are the same for any number of ranks. The
images are shown as the classifiers see them (``view``: e.g. the 224 crop of a 512 Stable Diffusion image).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from callbacks.shard_writer import read_block
from common.image_grids import save_contact_sheets
from common.image_views import ImageView

#: images resized at a time (a block of 512 x 512 images is large; the sheets are drawn from the resized copies)
VIEW_CHUNK = 512


class ContactSheets(Callback):
    def __init__(self, shard_dir: str | os.PathLike, out_dir: str | os.PathLike, block_size: int,
                 class_names: list[str], view: ImageView | None = None) -> None:
        self.shard_dir, self.out_dir = Path(shard_dir), Path(out_dir)
        self.block_size, self.class_names = int(block_size), list(class_names)
        self.view = view

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        trainer.strategy.barrier()  # every rank's ShardWriter (listed before this callback) has written its shard
        if trainer.is_global_zero:
            images, labels = read_block(self.shard_dir, self.block_size)
            if self.view is not None:
                images = torch.cat([self.view(images[start : start + VIEW_CHUNK])
                                    for start in range(0, len(images), VIEW_CHUNK)])
            save_contact_sheets(images, torch.arange(len(labels)), str(self.out_dir), labels=labels,
                                class_names=self.class_names)
