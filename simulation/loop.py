"""The self-consuming loop: a short sequence of stages per generation over one run directory.

Generation 0 trains every classifier on the real data. Generation n >= 1: a fresh generator trains on the current
dataset D_{n-1} (real + stack at share p), generates S samples scored by the quality gates, the kept block is
pushed into the FIFO stack, and every classifier is retrained on D_n and evaluated on the real test set.

Every stage gets a fresh Trainer, its own folder and a seed from (seed, generation, stage); completed stages are
recorded in the run state, so re-running the same command resumes after the last one.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from common.distributed import exit_when_orphaned, is_rank_zero, launch_id
from common.environment import collect_environment, version_changes
from common.errors import ConfigError
from common.logs import get_logger
from common.rank_roster import rank_lost
from datamodules.generational import GenerationalDataModule
from filters.base import FilterStep
from lightning_modules.generator import GeneratorModule
from records.run_directory import RunDirectory
from records.state import RunState, StageKey, config_fingerprint
from simulation.classifier_workers import (
    SideBySideClassifiers,
    is_worker,
    release_gpu_memory,
    worker_jobs,
    worker_slots,
)
from simulation.config import ClassifierConfig, LoopConfig, QualityConfig
from simulation.disk_plan import check_disk, check_view_store_disk, classifier_parameters, estimate_generation_disk
from simulation.loggers import StageLoggers
from simulation.run_lock import RankZeroWatch, RunLock
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

#: the view store's folder beside the run directory, unless ``data.view_store_dir`` names one
VIEW_STORE_FOLDER = ".genbias_views"


def run_name(path) -> str:
    """How the other loggers name a run: its folder and the one above, e.g. ``quickstart/seed_0``."""
    path = Path(path).resolve()
    return f"{path.parent.name}/{path.name}"


def run_hparams(loop: LoopConfig, classifiers: list[ClassifierConfig], generator, datamodule, filters: list,
                seed: int) -> dict:
    """The run's hyperparameters as every stage's logger run carries them (p, r, stack, seed, ...)."""
    return {"seed": int(seed), "generations": loop.generations, "samples_per_generation": loop.samples_per_generation,
            "window": datamodule.regime.window, "generator_epochs": loop.generator_epochs,
            "synthetic_share": datamodule.target_share, "policy": datamodule.regime.policy,
            "generator": type(generator).__name__ if generator is not None else "none",
            "classifiers": ",".join(c.label for c in classifiers),
            "filters": ",".join(type(f).__name__ for f in filters)}


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
        filters: list[FilterStep] | None = None,
        extra_problems: list[str] | None = None,
        world_size: int = 1,
        command: list[str] | None = None,
    ) -> None:
        """``command`` starts this CLI's ``fit`` again: the classifier workers of ``loop.classifier_parallelism:
        devices`` (``simulation.classifier_workers``)."""
        run_dir = RunDirectory(loop.run_dir)
        datamodule.default_view_store_dir(run_dir.path.parent / VIEW_STORE_FOLDER)  # shared by the runs beside it
        loggers = StageLoggers(loop.loggers, run_dir, run_name(run_dir.path),
                               run_hparams(loop, classifiers, generator, datamodule, filters or [], seed)) \
            if loop.loggers else None
        self.context = RunContext(
            run_dir=run_dir, data=datamodule, loop=loop, quality=quality or QualityConfig(),
            trainers=StageTrainers(trainer_kwargs, trainer_callbacks, run_dir.tensorboard_dir, world_size,
                                   loggers),
            classifiers=with_loop_lr(classifiers, loop), filters=list(filters or []), generator=generator,
            seed=int(seed),
        )
        self.config_text = config_text
        self.extra_problems = list(extra_problems or [])
        self.side_by_side = SideBySideClassifiers(command) if loop.classifier_parallelism == "devices" and command \
            else None
        if loop.classifier_parallelism == "devices" and not command:
            self.extra_problems.append("loop.classifier_parallelism: devices starts the CLI again for every classifier "
                                       "worker: run the loop through `python cli.py fit`, or set it to sequential")
        if self.side_by_side is not None:
            try:  # the GPUs it would use, checked before any work
                worker_slots(self.context.trainers, len(classifiers))
            except ConfigError as error:
                self.extra_problems.append(str(error))
        if loop.classifier_parallelism == "devices" and int(trainer_kwargs.get("num_nodes") or 1) > 1:
            self.extra_problems.append("loop.classifier_parallelism: devices runs the classifiers on one node's "
                                       "devices, and trainer.num_nodes is above 1: set it to sequential for a "
                                       "multi-node run")

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
        if is_worker():  # started by a launch with loop.classifier_parallelism: devices
            return self._serve_worker_jobs()
        context, run_dir = self.context, self.context.run_dir
        validate_run(context, self.extra_problems)
        launch = launch_id()
        stopped_by: BaseException | None = None
        lock = RunLock(run_dir.lock_path, launch) if is_rank_zero() else None
        try:
            if lock is not None:  # rank 0 owns the run directory; the other ranks follow its state
                self._open_run_directory(lock, launch)
            else:
                exit_when_orphaned()
                context.rank_zero_gone = RankZeroWatch(run_dir.lock_path, launch)  # rank 0's heartbeat
                run_dir.wait_for_launch(config_fingerprint(self.config_text), launch, context.rank_zero_gone)
            run_dir.load()
            context.data.prepare()
            self._open_stack()
            for generation in range(context.loop.generations + 1):
                classifiers_started = False
                for stage in self.stages(generation):
                    if self.side_by_side is not None and isinstance(stage, (TrainClassifier, EvaluateClassifier)):
                        if not classifiers_started:  # every classifier stage of the generation, at once
                            self.side_by_side.run(context, generation)
                            classifiers_started = True
                        continue
                    try:
                        stage.run(context)
                    except Exception as error:  # another rank died mid-stage: one line naming it (rank 0)
                        lost = rank_lost(error, stage.key)
                        if lost is None:
                            raise
                        raise lost from error
                    if isinstance(stage, PushBlock) and not context.loop.keep_raw_shards and is_rank_zero():
                        run_dir.delete_raw_shards(generation)  # once the push is recorded (loop.keep_raw_shards)
                if is_rank_zero():
                    write_generation_summary(run_dir, context.source, generation, context.trainers.loggers)
            if is_rank_zero():
                log.info(f"done: {len(run_dir.results)} result rows in {run_dir.results_path}")
            return run_dir.results
        except BaseException as error:
            stopped_by = error
            raise
        finally:
            if self.side_by_side is not None:
                self.side_by_side.close()
            if context.trainers.loggers is not None:  # the run's tracker runs: finished, failed or paused
                context.trainers.loggers.finish(stopped_by)
            if lock is not None:
                lock.release()

    def _serve_worker_jobs(self) -> list[dict]:
        """A classifier worker: run the jobs on standard input (train and evaluate one classifier of one generation),
        each recorded in its job's own record; the launch that started it holds the run's lock and adopts them."""
        context, run_dir = self.context, self.context.run_dir
        exit_when_orphaned()  # a killed launch takes its workers with it
        context.data.prepare()
        for job in worker_jobs(sys.stdin):
            run_dir.load()
            if run_dir.state.config_fingerprint != config_fingerprint(self.config_text):
                raise ConfigError(f"classifier worker {job.classifier}: {run_dir.path} holds another run than its "
                                  "config.yaml describes; re-run the launch's own command")
            classifier = next((c for c in context.classifiers if c.label == job.classifier), None)
            if classifier is None:
                raise ConfigError(f"classifier worker: the run's config has no classifier {job.classifier!r}")
            run_dir.record_elsewhere(job.record)
            self._open_stack(verify=False)  # as the launch's last push left it (the launch verified every checksum)
            for stage in (TrainClassifier(job.generation, classifier), EvaluateClassifier(job.generation, classifier)):
                stage.run(context)
            release_gpu_memory()  # the launch trains the next generator on the same GPUs
        return []

    def _open_run_directory(self, lock: RunLock, launch: str) -> None:
        """Check the folder can hold this run, take its lock, then create, resume or overwrite it (rank 0)."""
        run_dir, overwrite = self.context.run_dir, self.context.loop.overwrite
        planned = not lock.path.exists()  # (a folder with a lock is one of ours: another launch may be creating it)
        if planned:  # refuses a foreign folder, or a disk too small, before writing into it
            self._log_disk(self._plan_disk(run_dir.check_compatible(self.config_text, overwrite)))
        taken_over = lock.acquire()
        if taken_over:
            log.info(f"took over the lock of {run_dir.path}: {taken_over}")
        mode = run_dir.check_compatible(self.config_text, overwrite)  # again, now that no other launch can write
        if not planned:
            self._log_disk(self._plan_disk(mode))
        self._log_disk(self._plan_view_store())
        if mode == "resume" and self.context.loop.rebuild_stack:  # before the other ranks may read the stack
            run_dir.load()
            run_dir.check_raw_shards_kept()
            self.context.data.prepare()
            rebuild_stack(self.context)
        run_dir.create(self.config_text, mode, launch, dataset=self.context.source.facts.to_json())
        if mode == "resume" and run_dir.state.completed:
            log.info(f"resuming {run_dir.path}: {len(run_dir.state.completed)} stages done")
            recorded = run_dir.last_environment
            changes = version_changes(recorded, collect_environment()) if recorded else []
            if changes:
                log.warning(f"resuming under other versions than the stages already done ({', '.join(changes)}): "
                            "the remaining stages may compute different numbers than an uninterrupted run")

    def plan(self) -> list[str]:
        """What ``cli.py fit --check`` prints: every check ``run`` makes before its first write (the configuration,
        the run directory, the disk), then the stages, the disk estimate and the resources. Writes nothing."""
        context, run_dir = self.context, self.context.run_dir
        validate_run(context, self.extra_problems)
        mode = run_dir.check_compatible(self.config_text, context.loop.overwrite)
        state = run_dir.read_state() if mode == "resume" else RunState()
        stages = [stage for generation in range(context.loop.generations + 1) for stage in self.stages(generation)]
        to_run = [stage for stage in stages if not state.is_done(stage.key)]
        action = {"new": "a new run", "resume": f"resumes: {len(stages) - len(to_run)} of {len(stages)} stages done",
                  "overwrite": "loop.overwrite: the run there is replaced"}[mode]
        trainers = context.trainers
        kwargs = trainers.trainer_kwargs
        loggers = ", ".join(["tensorboard", *(spec.kind for spec in context.loop.loggers)])
        lines = [f"run directory: {run_dir.path} ({action})",
                 f"stages: {len(to_run)} to run over generations 0-{context.loop.generations} "
                 f"({', '.join(sorted({type(stage).__name__ for stage in to_run})) or 'none'})",
                 self._plan_disk(mode) or "disk: no generated data (generation 0 only, or every generation done)",
                 *filter(None, [self._plan_view_store()]),
                 f"resources: {trainers.world_size} process(es), accelerator {trainers.accelerator}, strategy "
                 f"{trainers.strategy}, precision {kwargs.get('precision') or '32-true'}; loggers: {loggers}"]
        if self.side_by_side is not None:
            slots = worker_slots(trainers, len(context.classifiers))
            lines.append(f"classifiers: side by side (loop.classifier_parallelism: devices), {len(slots)} worker(s) "
                         f"at a time, {slots[0].name} each")
        return lines

    def _plan_disk(self, mode: str) -> str | None:
        """Estimate the disk the generations to go need (the line to log), and refuse when the next one cannot fit."""
        context, run_dir = self.context, self.context.run_dir
        loop, generator = context.loop, context.generator
        if loop.generations == 0 or generator is None:
            return None
        state = run_dir.read_state() if mode == "resume" else RunState()
        left = [n for n in range(1, loop.generations + 1) if not state.is_done(StageKey.push(n))]
        if not left:
            return None
        source = context.source
        latent_bytes = generator.cached_latent_bytes  # Stable Diffusion's latent cache, per image (else 0)
        per_generation = estimate_generation_disk(
            loop.samples_per_generation, tuple(generator.image_shape), sum(p.numel() for p in generator.parameters()),
            [classifier_parameters(c, source.num_classes, source.image_shape[0]) for c in context.classifiers],
            latent_bytes)
        kept = context.data.regime.kept_generations or len(left)
        reclaimable = run_dir.size_on_disk() if mode == "overwrite" else 0
        once = 0  # the real images' latent cache, written once (when generation 1's generator starts)
        if latent_bytes and not state.is_done(StageKey.generator(1)):
            once = latent_bytes * context.data.planned_size("train")
        return check_disk(per_generation, len(left), kept, run_dir.path, loop.keep_raw_shards, reclaimable, once)

    def _plan_view_store(self) -> str | None:
        """The view store's one-time build: its line, or ConfigError when its filesystem cannot hold it."""
        data = self.context.data
        return check_view_store_disk(data.view_store_to_build(), Path(data.view_store_dir or "."))

    @staticmethod
    def _log_disk(line: str | None) -> None:
        if line:
            log.info(line)

    def _open_stack(self, verify: bool = True) -> None:
        """Open the stack and check it against the state (rank 0 verifies every checksum): never a wrong stack."""
        context, run_dir = self.context, self.context.run_dir
        stack = context.data.open_stack(run_dir.stack_dir, verify=verify and is_rank_zero())
        check_stack_matches_state(context, stack)
