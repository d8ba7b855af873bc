"""Where a training epoch's time goes: inside the model (forward, backward, optimizer step) or around it.

A small network on small images spends much of an epoch outside its own computation (loading, the Trainer's hooks,
logging, host-device copies); this callback measures that share instead of assuming it. Add it to any run:

    --trainer.callbacks+=callbacks.step_timing.StepTiming

Every training epoch (from its start to its last batch's end; validation is not counted) then logs
``timing/outside_model_fraction`` and ``timing/samples_per_s`` and appends one JSON line to ``step_timing.jsonl`` in
the stage's folder (rank 0). Model time is the network's forward (between forward hooks on a ``ClassifierModule``'s
``net``, or from the batch's start to the backward for other modules), the backward, and the optimizer step. On a
GPU every boundary synchronises the device so kernels are counted where they run; that costs a little throughput, so
leave the callback out of runs whose speed matters. Modules with manual optimization (the GAN generators) are not timed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from common.distributed import is_rank_zero
from lightning_modules.classifier import ClassifierModule


class StepTiming(Callback):
    def __init__(self, filename: str = "step_timing.jsonl") -> None:
        self.filename = filename
        self._handles: list = []

    def _now(self, pl_module) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:
        self.enabled = pl_module.automatic_optimization
        net = pl_module.net if isinstance(pl_module, ClassifierModule) else None  # a classifier's network is known
        self._hooked = self.enabled and net is not None
        if self._hooked:
            self._handles = [net.register_forward_pre_hook(lambda *_: self._forward_start(pl_module)),
                             net.register_forward_hook(lambda *_: self._forward_end(pl_module))]

    def on_train_end(self, trainer, pl_module) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.model_s, self.samples = 0.0, 0
        self.epoch_start = self.last_batch_end = self._now(pl_module)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.enabled:
            self._mark = self._now(pl_module)
            self.samples += len(batch["image"])

    def _forward_start(self, pl_module) -> None:
        if pl_module.training:
            self._mark = self._now(pl_module)

    def _forward_end(self, pl_module) -> None:
        if pl_module.training:
            self.model_s += self._now(pl_module) - self._mark

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        if not self.enabled:
            return
        now = self._now(pl_module)
        if not self._hooked:
            self.model_s += now - self._mark
        self._mark = now

    def on_after_backward(self, trainer, pl_module) -> None:
        if self.enabled:
            self.model_s += self._now(pl_module) - self._mark

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.enabled:
            self._mark = self._now(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.enabled:
            self.last_batch_end = self._now(pl_module)
            self.model_s += self.last_batch_end - self._mark

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self.enabled or self.samples == 0:
            return
        epoch_s = self.last_batch_end - self.epoch_start  # the training batches, not the validation after them
        record = {"epoch": trainer.current_epoch, "epoch_s": round(epoch_s, 6), "model_s": round(self.model_s, 6),
                  "outside_model_fraction": round(1.0 - self.model_s / epoch_s, 6), "samples": self.samples,
                  "samples_per_s": round(self.samples / epoch_s, 3)}
        pl_module.log("timing/outside_model_fraction", record["outside_model_fraction"])
        pl_module.log("timing/samples_per_s", record["samples_per_s"])
        if is_rank_zero():
            path = Path(trainer.default_root_dir) / self.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as handle:
                handle.write(json.dumps({"stage_dir": str(trainer.default_root_dir), **record}) + "\n")
