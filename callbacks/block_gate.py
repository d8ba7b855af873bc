"""The base of the generation stage's gates: callbacks fed every generated batch of the block exactly once.

A batch reaches a gate as it is generated, or, when a resumed generation stage skips a chunk an interrupted attempt
finished, read back from that chunk (``ShardWriter`` replays it before generation goes on), so a gate's results are
the same whether the stage ran at once or was resumed.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback

from common.generated import GeneratedBatch


class BlockGate(Callback):
    def consume(self, batch: GeneratedBatch, pl_module) -> None:
        """Score or measure one generated batch (on ``pl_module``'s device)."""
        raise NotImplementedError

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.consume(GeneratedBatch.from_prediction(outputs), pl_module)
