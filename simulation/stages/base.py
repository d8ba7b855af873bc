"""What every stage shares: the run context, the stage contract, and how a finished stage is recorded."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch

from common.distributed import barrier, is_rank_zero, process_group_ready
from common.environment import collect_environment
from common.logs import format_duration, get_logger
from datamodules.generational import GenerationalDataModule
from filters.base import FilterStep
from lightning_modules.generator import GeneratorModule
from metrics.block_statistics import subgroup_counts
from records.run_directory import RunDirectory
from records.state import StageKey
from simulation.config import ClassifierConfig, FIDConfig, LoopConfig, QualityConfig
from simulation.trainers import StageTrainers

log = get_logger()


@dataclass(frozen=True)
class TrainingBatch:
    """What one optimizer step of a training stage sees: per-device batch x devices = global batch, and its lr."""

    per_device: int
    world_size: int
    lr: float | None

    @property
    def global_batch(self) -> int:
        return self.per_device * self.world_size

    def describe(self) -> str:
        """e.g. 'batch 16 per device x 2 devices = 32 global, lr 0.001' (for the stage's progress line)."""
        lr = "" if self.lr is None else f", lr {self.lr:g}"
        devices = "device" if self.world_size == 1 else "devices"
        return (f"batch {self.per_device} per device x {self.world_size} {devices} = {self.global_batch} "
                f"global{lr}")

    def record(self) -> dict:
        """For the stage's info in the state and its TensorBoard hparams."""
        return {"batch_per_device": self.per_device, "batch_global": self.global_batch,
                "world_size": self.world_size, "lr": self.lr}


@dataclass
class RunContext:
    """Everything the stages of one run share, built once by the loop."""

    run_dir: RunDirectory
    data: GenerationalDataModule
    trainers: StageTrainers
    loop: LoopConfig
    quality: QualityConfig
    classifiers: list[ClassifierConfig]
    filters: list[FilterStep]
    generator: GeneratorModule | None
    seed: int
    # on a non-zero rank: None while rank 0 shows it is alive, else why not (run_lock.RankZeroWatch)
    rank_zero_gone: Callable[[], str | None] | None = None

    @property
    def source(self):
        return self.data.source

    @property
    def real_subgroup_counts(self) -> torch.Tensor | None:
        """(L, G) subgroup counts of the real training data (None without known subgroups)."""
        if self.source.num_groups == 0:
            return None
        train = self.data.prepare()["train"]
        return subgroup_counts(train.labels, train.groups, self.source.num_classes, self.source.num_groups)

    @property
    def fid(self) -> FIDConfig:
        return self.quality.fid or FIDConfig()

    @property
    def reference_classifier(self) -> str:
        """The generation-0 classifier that measures q_t and extracts the classifier-feature FID."""
        return self.quality.reference_classifier or self.classifiers[0].label

    @property
    def filter_classifier(self) -> str:
        """The classifier whose previous-generation weights the uncertainty filter uses."""
        return self.quality.filter_classifier or self.classifiers[0].label

    def stage_label(self, generation: int, what: str) -> str:
        return f"generation {generation}/{self.loop.generations} - {what}"

    def progress(self, generation: int, message: str) -> None:
        log.info(self.stage_label(generation, message))

    def epoch_composition(self) -> str:
        """What a training epoch is made of now, e.g. '3500 real + 1170 synthetic samples/epoch (share 0.25 of the
        target 0.50, each stack sample drawn 1.00x; stack: [1])': the share is the realised one."""
        data = self.data
        return (f"{data.real_per_epoch} real + {data.n_synthetic} synthetic samples/epoch (share "
                f"{data.realised_synthetic_share:.2f} of the target {data.target_share:.2f}, each stack sample drawn "
                f"{data.synthetic_reuse:.2f}x; stack: {data.stack_generations})")

    def training_batch(self, batch_size: int, lr: float | None) -> TrainingBatch:
        """The batch (and learning rate) a training stage configured with ``batch_size`` trains with."""
        world = self.trainers.world_size
        per_device = batch_size // world if self.data.batch_size_is_global else batch_size
        return TrainingBatch(per_device=per_device, world_size=world, lr=lr)

    def finish(self, key: StageKey, rows: list[dict] = (), **state) -> None:
        """Record a completed stage, its result rows and what it changed in the state (``RunDirectory.mark_done``'s
        parts) on rank 0, and bring every rank to the same state."""
        if is_rank_zero():
            self.run_dir.note_environment(key, collect_environment(self.trainers.trainer_kwargs.get("num_nodes")))
            self.run_dir.mark_done(key, rows, **state)
        if process_group_ready():
            barrier()
        elif not is_rank_zero():  # ranks started together, before any Trainer made the process group
            self.run_dir.wait_for_stage(key, self.rank_zero_gone)
        if not is_rank_zero():
            self.run_dir.load()


class Stage(ABC):
    """One step of the loop; ``run`` skips it when the run state records ``key`` as done (a resume)."""

    generation: int

    @property
    @abstractmethod
    def key(self) -> StageKey:
        """The stage's key in the run state, e.g. ``g1/generate``."""

    def run(self, context: RunContext) -> None:
        if not context.run_dir.is_done(self.key):
            started = time.monotonic()
            self.execute(context)
            log.info(f"generation {self.generation}/{context.loop.generations} - stage {self.key} done in "
                     f"{format_duration(time.monotonic() - started)}")

    @abstractmethod
    def execute(self, context: RunContext) -> None:
        """Do the stage's work and record it with ``context.finish(self.key, ...)``."""
