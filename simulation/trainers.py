"""A fresh Lightning Trainer for every stage, from the `trainer:` section of the config.

LightningCLI's own trainer reuses its callback objects; every stage here gets deep copies of the configured
callbacks, its own folder (Lightning's requeue checkpoints land there), its own TensorBoard run, and the settings
the loop owns (epochs, logger, checkpointing, no distributed sampler: the data module splits every loader itself).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch

from callbacks.progress import LineProgress
from callbacks.rank_roster import RankRoster
from common.distributed import barrier, is_rank_zero
from records.checkpoint_io import AtomicCheckpointIO
from records.layout import requeue_checkpoints
from simulation.loggers import StageLoggers, tensorboard_logger


class StageTrainers:
    def __init__(self, trainer_kwargs: dict[str, Any], callbacks: list | None, tensorboard_dir: Path,
                 world_size: int = 1, loggers: StageLoggers | None = None) -> None:
        self.trainer_kwargs = dict(trainer_kwargs)
        self.world_size = int(world_size)  # devices x nodes the trainer settings run on (from the CLI's Trainer)
        self.callbacks = list(callbacks or [])
        self.tensorboard_dir = Path(tensorboard_dir)
        self.loggers = loggers  # the user's own loggers (loop.loggers) beside TensorBoard

    @property
    def strategy(self) -> str:
        return str(self.trainer_kwargs.get("strategy", "auto"))

    @property
    def accelerator(self) -> str:
        return str(self.trainer_kwargs.get("accelerator", "auto"))

    def host_device(self) -> torch.device:
        """Where rank 0 computes between stages (the push stage's FID of the kept samples): the process's current
        GPU when the trainer runs on GPUs, else the CPU."""
        if self.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def build(self, stage_dir: Path, *, name: str, version: str, label: str, max_epochs: int = 1,
              callbacks: list | None = None, find_unused_parameters: bool = False, stage: str | None = None,
              shown_metrics: tuple[str, ...] = (), **extra) -> L.Trainer:
        """A Trainer for one stage; ``name``/``version`` place its TensorBoard run (e.g. gen_01 / lenet), ``stage``
        names its run in the other loggers (default: ``version``), ``label`` names the stage in its progress lines,
        which show the logged ``shown_metrics`` (the module declares them).

        Lightning's progress bar where a terminal is attached (and ``trainer.enable_progress_bar`` is on), a log line
        per epoch otherwise (a SLURM log file, a pipe).
        """
        kwargs = dict(self.trainer_kwargs)
        if find_unused_parameters and self.strategy == "ddp":
            kwargs["strategy"] = "ddp_find_unused_parameters_true"
        show_bar = bool(kwargs.get("enable_progress_bar", True)) and sys.stdout.isatty()
        kwargs["enable_progress_bar"] = show_bar
        callbacks = [*(callbacks or []), *([] if show_bar else [LineProgress(label, shown_metrics)]), RankRoster()]
        logger = [tensorboard_logger(self.tensorboard_dir, name, version)]
        if self.loggers is not None and extra.get("logger", True) is not False:
            logger += self.loggers.for_stage(name, stage or version)
        kwargs.update(max_epochs=max_epochs, default_root_dir=str(stage_dir), logger=logger,
                      use_distributed_sampler=False, plugins=[*self._user_plugins(), AtomicCheckpointIO()],
                      callbacks=[*copy.deepcopy(self.callbacks), *(callbacks or [])])
        kwargs.update(extra)
        return L.Trainer(**kwargs)

    def _user_plugins(self) -> list:
        plugins = self.trainer_kwargs.get("plugins") or []
        return list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]

    @staticmethod
    def drop_requeue_checkpoints(stage_dir: Path) -> None:
        """After a stage's fit completed: Lightning would otherwise load a stale hpc_ckpt in later test/predict."""
        if is_rank_zero():
            for path in requeue_checkpoints(stage_dir):
                path.unlink()
        barrier()
