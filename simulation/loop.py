"""The self-consuming loop: a short sequence of stages per generation over one run directory.

Generation 0 trains every classifier on the real data. Generation n >= 1: a fresh generator trains on the current
dataset D_{n-1} (real + stack at share p), generates S samples scored by the quality gates, the kept block is
pushed into the FIFO stack, and every classifier is retrained on D_n and evaluated on the real test set.

Every stage gets a fresh Trainer, its own folder and a seed from (seed, generation, stage); completed stages are
recorded in the run state, so re-running the same command resumes after the last one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from common.distributed import exit_when_orphaned, is_rank_zero, launch_id, wait_for_state
from common.logs import get_logger
from datamodules.generational import GenerationalDataModule
from filters.base import SampleFilter
from lightning_modules.generator import GeneratorModule
from simulation.config import ClassifierConfig, LoopConfig, QualityConfig
from simulation.run_directory import RunDirectory, config_fingerprint
from simulation.run_lock import RunLock
from simulation.stages import (
    EvaluateClassifier,
    GenerateBlock,
    PushBlock,
    RunContext,
    Stage,
    TrainClassifier,
    TrainGenerator,
    TrainSubgroupOracle,
)
from simulation.stages.oracle import needs_learned_oracle
from simulation.stages.push import check_stack_matches_state, rebuild_stack
from simulation.summary import write_generation_summary
from simulation.trainers import StageTrainers
from simulation.validation import validate_run

log = get_logger()


def with_loop_lr(classifiers: list[ClassifierConfig], loop: LoopConfig) -> list[ClassifierConfig]:
    """The classifiers with ``loop.classifier_lr`` (when set) as every one's learning rate."""
    if loop.classifier_lr is None:
        return list(classifiers)
    return [dataclasses.replace(c, lr=float(loop.classifier_lr)) for c in classifiers]


class SimulationLoop:
    """Runs (or resumes) one experiment: ``SimulationLoop(...).run()`` returns the result rows."""

    def __init__(
        self,
        *,
        loop: LoopConfig,
        classifiers: list[ClassifierConfig],
        generator: GeneratorModule | None,
        datamodule: GenerationalDataModule,
        trainer_kwargs: dict[str, Any],
        trainer_callbacks: list | None = None,
        seed: int = 0,
        config_text: str = "",
        quality: QualityConfig | None = None,
        filters: list[SampleFilter] | None = None,
        extra_problems: list[str] | None = None,
    ) -> None:
        run_dir = RunDirectory(loop.run_dir)
        self.context = RunContext(
            run_dir=run_dir, data=datamodule, loop=loop, quality=quality or QualityConfig(),
            trainers=StageTrainers(trainer_kwargs, trainer_callbacks, run_dir.tensorboard_dir),
            classifiers=with_loop_lr(classifiers, loop), filters=list(filters or []), generator=generator,
            seed=int(seed),
        )
        self.config_text = config_text
        self.extra_problems = list(extra_problems or [])

    def stages(self, generation: int) -> list[Stage]:
        """The stages of one generation, in order."""
        context = self.context
        stages: list[Stage] = []
        if generation > 0:
            stages += [TrainGenerator(generation), GenerateBlock(generation), PushBlock(generation)]
        for classifier in context.classifiers:
            stages += [TrainClassifier(generation, classifier), EvaluateClassifier(generation, classifier)]
        if generation == 0 and context.loop.generations > 0 and needs_learned_oracle(context):
            stages.append(TrainSubgroupOracle())
        return stages

    def run(self) -> list[dict]:
        context, run_dir = self.context, self.context.run_dir
        validate_run(context, self.extra_problems)
        launch = launch_id()
        lock = RunLock(run_dir.lock_path, launch) if is_rank_zero() else None
        try:
            if lock is not None:  # rank 0 owns the run directory; the other ranks follow its state
                self._open_run_directory(lock, launch)
            else:
                exit_when_orphaned()
                wait_for_state(run_dir.state_path, config_fingerprint(self.config_text), launch)
            run_dir.load()
            context.data.prepare()
            self._open_stack()
            for generation in range(context.loop.generations + 1):
                for stage in self.stages(generation):
                    stage.run(context)
                if is_rank_zero():
                    write_generation_summary(run_dir, context.source)
            if is_rank_zero():
                log.info(f"done: {len(run_dir.results)} result rows in {run_dir.results_path}")
            return run_dir.results
        finally:
            if lock is not None:
                lock.release()

    def _open_run_directory(self, lock: RunLock, launch: str) -> None:
        """Check the folder can hold this run, take its lock, then create, resume or overwrite it (rank 0)."""
        run_dir, overwrite = self.context.run_dir, self.context.loop.overwrite
        if not lock.path.exists():  # (a folder with a lock is one of ours: another launch may be creating it)
            run_dir.check_compatible(self.config_text, overwrite)  # refuses a foreign folder before writing into it
        taken_over = lock.acquire()
        if taken_over:
            log.info(f"took over the lock of {run_dir.path}: {taken_over}")
        mode = run_dir.check_compatible(self.config_text, overwrite)  # again, now that no other launch can write
        if mode == "resume" and self.context.loop.rebuild_stack:  # before the other ranks may read the stack
            run_dir.load()
            self.context.data.prepare()
            rebuild_stack(self.context)
        run_dir.create(self.config_text, mode, launch)
        if mode == "resume" and run_dir.state["completed"]:
            log.info(f"resuming {run_dir.path}: {len(run_dir.state['completed'])} stages done")

    def _open_stack(self) -> None:
        """Open the stack and check it against the state (rank 0 verifies every checksum): never a wrong stack."""
        context, run_dir = self.context, self.context.run_dir
        stack = context.data.open_stack(run_dir.stack_dir, context.loop.stack_generations, verify=is_rank_zero())
        check_stack_matches_state(context, stack)
