"""Prediction writer: every generated batch goes to disk as it comes, as one checksummed chunk file.

A rank never holds more than the batch it is generating. The chunks are named by the ids they hold
(``common.generated``), so the block is the same for any number of ranks, and a generation stage that was killed
resumes: a chunk the interrupted attempt completed is not generated again but read back and replayed to the gates
(``BlockGate``), in the order the rank would have generated it, so their per-sample results, and the block, are
those of an uninterrupted run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lightning.pytorch.callbacks import BasePredictionWriter

from callbacks.block_gate import BlockGate
from common.generated import (
    CHUNK_PATTERN,
    GeneratedBatch,
    chunk_is_complete,
    chunk_path,
    chunk_range,
    read_chunk,
    write_chunk,
)
from common.heap import fix_mmap_threshold
from common.io import TEMP_PREFIX
from common.logs import get_logger
from datamodules.samplers import AlignedBatchSampler

log = get_logger()


def planned_chunks(block_size: int, batch_size: int, world_size: int) -> dict[int, list[tuple[int, int]]]:
    """(first id, end id) of every batch each rank generates, in its order (the generation loader's batches)."""
    plan = {}
    for rank in range(world_size):
        batches = AlignedBatchSampler(block_size, batch_size, rank=rank, world_size=world_size)
        plan[rank] = [(ids[0], ids[-1] + 1) for ids in batches]
    return plan


def keep_finished_chunks(directory: Path, planned: set[tuple[int, int]]) -> int:
    """Delete what an interrupted attempt left that this attempt cannot use (a temp file, a damaged chunk, a chunk
    cut for another world size); return how many complete chunks remain. Rank 0, before the other ranks look."""
    kept = 0
    if not directory.exists():
        return 0
    for path in sorted(directory.iterdir()):
        span = chunk_range(path)
        if span is not None and span in planned and chunk_is_complete(path):
            kept += 1
        elif span is not None or path.name.startswith(TEMP_PREFIX) or path.name.startswith("shard_rank"):
            path.unlink()
    return kept


class ShardWriter(BasePredictionWriter):
    """Writes each batch as a chunk; on a resumed stage, replays the chunks already written to ``gates``.

    ``batch_size`` must be the generation loader's (its aligned batches are the chunks). ``done_batches`` tells the
    loader which batches to skip; it is known once ``setup`` has run (after the process group is up).
    """

    def __init__(self, out_dir: str | os.PathLike, block_size: int, batch_size: int,
                 gates: Sequence[BlockGate] = ()) -> None:
        super().__init__(write_interval="batch")
        self.out_dir = Path(out_dir)
        self.block_size, self.batch_size = int(block_size), int(batch_size)
        self.gates = list(gates)
        self._replay: list[tuple[int, int]] = []
        #: chunks this attempt generated and wrote, and chunks it read back from an interrupted attempt
        self.written = 0
        self.replayed = 0

    def setup(self, trainer, pl_module, stage: str) -> None:
        fix_mmap_threshold()  # each batch's buffers go back to the OS when freed: memory bounded by a batch
        rank, world_size = trainer.global_rank, trainer.world_size
        plan = planned_chunks(self.block_size, self.batch_size, world_size)
        if trainer.is_global_zero:
            kept = keep_finished_chunks(self.out_dir, {span for spans in plan.values() for span in spans})
            if kept:
                log.info(f"resuming generation: {kept} of {sum(map(len, plan.values()))} chunks in {self.out_dir} "
                         "are complete and are not generated again")
        trainer.strategy.barrier()  # every rank now sees the chunks rank 0 kept
        done = {chunk_range(p) for p in self.out_dir.glob(CHUNK_PATTERN)} if self.out_dir.exists() else set()
        mine = [span for span in plan[rank] if span in done]
        if mine and len(mine) == len(plan[rank]):
            mine = mine[:-1]  # a rank with no batch left would not take part in the stage: it redoes its last one
        self._replay = mine
        self.written = self.replayed = 0

    def done_batches(self) -> set[int]:
        """First ids of the batches this rank reads back instead of generating."""
        return {start for start, _ in self._replay}

    def on_predict_epoch_start(self, trainer, pl_module) -> None:
        # the finished chunks come first, as in the rank's own order: the gates see what an uninterrupted run shows
        for start, stop in self._replay:
            batch = read_chunk(chunk_path(self.out_dir, start, stop))
            for gate in self.gates:
                gate.consume(batch, pl_module)
            self.replayed += 1

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        write_chunk(self.out_dir, GeneratedBatch.from_prediction(prediction))
        self.written += 1
