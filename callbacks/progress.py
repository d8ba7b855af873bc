"""Progress a SLURM log file can show: a line per training epoch, every tenth of a generated block, per evaluation.

Lightning's progress bar redraws one terminal line, which turns into thousands of carriage returns in a log file;
where no terminal is attached (or the bar is off) the stages log this instead, each line with the stage's elapsed
time and an estimate of what is left.
"""

from __future__ import annotations

import time

from lightning.pytorch.callbacks import Callback

from common.logs import format_duration, get_logger

log = get_logger()
SHOWN_METRICS = ("train/loss", "val/loss", "val/acc", "train/d_loss", "train/g_loss")


class LineProgress(Callback):
    def __init__(self, label: str) -> None:
        """``label`` names the stage in every line, e.g. ``generation 1/3 - lenet``."""
        self.label = label

    # ------------------------------------------------------------------------------------------- training
    def on_train_start(self, trainer, pl_module) -> None:
        self._started = time.monotonic()
        self._first_epoch = trainer.current_epoch
        if trainer.current_epoch or trainer.global_step:
            log.info(f"{self.label}: resumed at epoch {trainer.current_epoch + 1}/{trainer.max_epochs} "
                     f"(step {trainer.global_step})")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        done = trainer.current_epoch + 1
        elapsed = time.monotonic() - self._started
        per_epoch = elapsed / max(done - self._first_epoch, 1)
        left = per_epoch * (trainer.max_epochs - done)
        metrics = " ".join(f"{key}={float(trainer.callback_metrics[key]):.4f}" for key in SHOWN_METRICS
                           if key in trainer.callback_metrics)
        eta = f", at most {format_duration(left)} left" if done < trainer.max_epochs else ""
        log.info(f"{self.label}: epoch {done}/{trainer.max_epochs} done, {format_duration(elapsed)}{eta}"
                 + (f" ({metrics})" if metrics else ""))

    # ------------------------------------------------------------------------------------------- generation
    def on_predict_start(self, trainer, pl_module) -> None:
        self._started = time.monotonic()
        self._generated = 0
        self._next_report = 0.1

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._generated += len(outputs["index"])
        total = trainer.num_predict_batches[dataloader_idx]
        share = (batch_idx + 1) / max(total, 1)
        if share >= self._next_report or batch_idx + 1 == total:
            elapsed = time.monotonic() - self._started
            left = elapsed / share * (1 - share)
            log.info(f"{self.label}: batch {batch_idx + 1}/{total} ({self._generated} samples) on this rank, "
                     f"{format_duration(elapsed)}, about {format_duration(left)} left")
            while self._next_report <= share:
                self._next_report += 0.1

    # ------------------------------------------------------------------------------------------- evaluation
    def on_test_start(self, trainer, pl_module) -> None:
        self._started = time.monotonic()

    def on_test_end(self, trainer, pl_module) -> None:
        log.info(f"{self.label}: evaluated in {format_duration(time.monotonic() - self._started)}")
