"""Generation-stage callback: contact sheets of the raw block, every image captioned with its sample id and class.

A reviewer writes the ids to reject into the manual filter's list (paper appendix C). Once every rank has written
its chunks, the sheets are shared out over the ranks (rank r draws a consecutive run of sheets) and each is drawn
from the chunks that hold its samples, so no rank reads more than a chunk and a sheet at a time, and the sheets are
the same for any number of ranks. The images are shown as the classifiers see them (``view``: e.g. the 224 crop of
a 512 Stable Diffusion image).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from common.generated import GeneratedBatch, GeneratedBlock
from common.image_grids import contact_sheet_layout, contact_sheet_path, save_contact_sheet
from common.image_views import ImageView

PER_SHEET = 100


def sheets_of_rank(num_sheets: int, rank: int, world_size: int) -> range:
    """The consecutive sheets rank ``rank`` draws (every sheet exactly once over the ranks)."""
    return range(rank * num_sheets // world_size, (rank + 1) * num_sheets // world_size)


class ContactSheets(Callback):
    def __init__(self, shard_dir: str | os.PathLike, out_dir: str | os.PathLike, labels: torch.Tensor,
                 class_names: list[str], view: ImageView | None = None, per_sheet: int = PER_SHEET) -> None:
        """``labels``: the requested label of every sample of the block, in id order."""
        self.shard_dir, self.out_dir = Path(shard_dir), Path(out_dir)
        self.labels, self.class_names = labels.long().cpu(), list(class_names)
        self.view, self.per_sheet = view, int(per_sheet)

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        trainer.strategy.barrier()  # every rank's ShardWriter has written its chunks
        self.draw(trainer.global_rank, trainer.world_size)

    def draw(self, rank: int, world_size: int) -> list[str]:
        """Draw this rank's sheets; returns their paths."""
        size = len(self.labels)
        sheets = sheets_of_rank(-(-size // self.per_sheet), rank, world_size)
        if not len(sheets):
            return []
        self.out_dir.mkdir(parents=True, exist_ok=True)
        start, stop = sheets.start * self.per_sheet, min(sheets.stop * self.per_sheet, size)
        block = GeneratedBlock(self.shard_dir, size)
        self._layout = None
        batches = block.rebatched(torch.arange(start, stop), self.per_sheet)
        return [self._save(sheet, sheets.start + number) for number, sheet in enumerate(batches)]

    def _save(self, sheet: GeneratedBatch, sheet_index: int) -> str:
        images = self.view(sheet.images) if self.view is not None else sheet.images
        if self._layout is None:
            self._layout = contact_sheet_layout(tuple(images.shape[2:]), list(range(len(self.labels))),
                                                self.labels.tolist(), self.class_names)
        return save_contact_sheet(images, sheet.ids.tolist(), sheet.labels.tolist(),
                                  contact_sheet_path(str(self.out_dir), sheet_index), self._layout, self.per_sheet,
                                  self.class_names)
