"""The self-consuming loop (DESIGN.md section 1): one orchestrator that owns the run directory and its stages.

Generation 0 trains every classifier on the real data. Generation n >= 1: a fresh generator trains on the
current dataset D_{n-1} (real + stack at share p), generates S samples, the block is filtered and pushed into
the FIFO stack, and every classifier is retrained on D_n and evaluated on the real test set.

Each stage gets a fresh Trainer (fresh callbacks), its own folder and a seed from (seed, generation, stage);
completed stages are recorded in the run state so re-running the same command resumes after the last one.
"""

from __future__ import annotations

import copy
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from callbacks.ablation_evaluation import AblationEvaluation
from callbacks.shard_writer import ShardWriter, merge_shards
from common.distributed import (
    barrier,
    is_rank_zero,
    launch_id,
    process_group_ready,
    wait_for_stage,
    wait_for_state,
)
from common.errors import ConfigError
from datamodules.generational import GenerationalDataModule
from datamodules.stack import SyntheticStack
from lightning_modules.classifier import ClassifierModule
from lightning_modules.generator import GeneratorModule
from lightning_modules.networks.registry import get_arch, pretrained_weights_file
from simulation.config import ClassifierConfig, LoopConfig
from simulation.run_directory import RunDirectory, config_fingerprint
from simulation.seeding import EpochSeeder, stage_seed
from simulation.summary import write_generation_summary

log = logging.getLogger("genbias")

METRIC_KEYS = ("acc", "meo", "di", "md", "meo_class", "di_class", "md_class")


def _scalar(value: torch.Tensor) -> float | None:
    value = float(value)
    return None if value != value else value  # NaN -> null in JSON


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
        quality=None,
        extra_problems: list[str] | None = None,
    ) -> None:
        self.loop = loop
        self.classifiers = classifiers
        self.generator_template = generator
        self.dm = datamodule
        self.trainer_kwargs = dict(trainer_kwargs)
        self.trainer_callbacks = list(trainer_callbacks or [])
        self.seed = int(seed)
        self.config_text = config_text
        self.quality = quality
        self.extra_problems = list(extra_problems or [])
        self.run_dir = RunDirectory(loop.run_dir)
        self.stack: SyntheticStack | None = None

    # ============================================================================================ validation
    def _open_stack(self, verify: bool = True) -> SyntheticStack:
        """The FIFO stack: the last ``loop.stack_generations`` blocks, within ``data.stack_capacity`` samples if set."""
        return SyntheticStack(self.run_dir.path / "stack", self.loop.stack_generations, self.dm.stack_capacity,
                              verify=verify)

    def validate(self) -> str:
        """Check everything a user can get wrong, before any work; returns the run-directory mode.

        Every independent check runs, and all problems are reported in one ConfigError (so a user missing the
        data, the generator weights and a classifier's weights learns all three at once).
        """
        problems: list[str] = list(self.extra_problems)

        def check(fn) -> None:
            try:
                fn()
            except ConfigError as err:
                problems.append(str(err))

        check(self._validate_loop)
        check(self._validate_classifiers)
        check(self.dm.validate)
        if self.generator_template is not None and self.loop.generations > 0:
            src = self.dm.source
            check(lambda: self.generator_template.check_compatible(src.num_classes, src.image_shape))
            validate_generator = getattr(self.generator_template, "validate", None)
            if callable(validate_generator):
                check(validate_generator)
        if self.quality is not None and self.classifiers:
            check(lambda: self.quality.validate(self))
        if problems:
            if len(problems) == 1:
                raise ConfigError(problems[0])
            raise ConfigError(f"{len(problems)} problems in the configuration:\n" +
                              "\n".join(f"({i}) {p}" for i, p in enumerate(problems, start=1)))
        if not is_rank_zero():  # rank 0 owns the run directory; the others follow its state
            return "follow"
        return self.run_dir.check_compatible(self.config_text, self.loop.overwrite)

    def _validate_loop(self) -> None:
        loop = self.loop
        if loop.generations < 0:
            raise ConfigError(f"loop.generations must be >= 0, got {loop.generations}")
        strategy = str(self.trainer_kwargs.get("strategy", "auto"))
        if "spawn" in strategy:
            raise ConfigError(f"trainer.strategy={strategy!r} is not supported (spawned processes double-count "
                              "metric states): use strategy: ddp")
        if loop.generations == 0:
            return
        if loop.samples_per_generation <= 0:
            raise ConfigError(f"loop.samples_per_generation must be > 0, got {loop.samples_per_generation}")
        if loop.generator_epochs <= 0:
            raise ConfigError(f"loop.generator_epochs must be > 0, got {loop.generator_epochs}")
        if loop.stack_generations < 1:
            raise ConfigError(f"loop.stack_generations must be >= 1 (the number of generations the FIFO stack keeps; "
                              f"the paper keeps 3), got {loop.stack_generations}")
        budget = self.dm.stack_capacity
        if budget is not None and budget < loop.samples_per_generation:
            raise ConfigError(
                f"data.stack_capacity {budget} is smaller than one generation's block "
                f"({loop.samples_per_generation} samples): raise data.stack_capacity, unset it (the stack then keeps "
                "loop.stack_generations whole generations) or lower loop.samples_per_generation"
            )
        if self.generator_template is None:
            raise ConfigError("loop.generations > 0 needs a generator: set model.class_path "
                              "(e.g. lightning_modules.dcgan.ConditionalDCGAN)")

    def _validate_classifiers(self) -> None:
        if not self.classifiers:
            raise ConfigError("no classifiers configured: add at least one entry under classifiers:")
        names = [c.label for c in self.classifiers]
        if len(set(names)) != len(names):
            raise ConfigError(f"classifier names must be unique, got {names}: set name: for repeated archs")
        missing_weights = []
        for c in self.classifiers:
            get_arch(c.arch)
            if c.max_epochs <= 0:
                raise ConfigError(f"classifier {c.label!r}: max_epochs must be > 0, got {c.max_epochs}")
            if c.lr <= 0:
                raise ConfigError(f"classifier {c.label!r}: lr must be > 0, got {c.lr}")
            if c.patience < 0:
                raise ConfigError(f"classifier {c.label!r}: patience must be >= 0, got {c.patience}")
            if c.pretrained:
                path, hint = pretrained_weights_file(c.arch, c.weights_path)
                if path is None:
                    missing_weights.append(f"classifier {c.label!r}: ImageNet weights not found: {hint}")
        if missing_weights:
            raise ConfigError("\n".join(missing_weights))

    # ============================================================================================ plumbing
    def _trainer(self, stage_dir: Path, *, max_epochs: int, callbacks: list, name: str, version: str,
                 strategy_override: str | None = None, **extra) -> L.Trainer:
        kwargs = dict(self.trainer_kwargs)
        if strategy_override is not None:
            kwargs["strategy"] = strategy_override
        logger = TensorBoardLogger(save_dir=str(self.run_dir.path / "tensorboard"), name=name, version=version)
        # the data module splits every loader across ranks itself (mixed batches; unpadded evaluation)
        kwargs.update(max_epochs=max_epochs, default_root_dir=str(stage_dir), logger=logger,
                      use_distributed_sampler=False, callbacks=[*copy.deepcopy(self.trainer_callbacks), *callbacks])
        kwargs.update(extra)
        return L.Trainer(**kwargs)

    def _stage(self, key: str) -> bool:
        """True when ``key`` still has to run."""
        return not self.run_dir.is_done(key)

    def _finish(self, key: str, row: dict | None = None, **extra) -> None:
        if is_rank_zero():
            self.run_dir.mark_done(key, row, **extra)
        self._sync_stage(key)

    def _sync_stage(self, key: str) -> None:
        """After rank 0 recorded ``key``: every rank continues from the same state."""
        if process_group_ready():
            barrier()
        elif not is_rank_zero():  # ranks started together, before any Trainer made the process group
            wait_for_stage(self.run_dir.state_path, key)
        if not is_rank_zero():
            self.run_dir.load()

    @staticmethod
    def _last_checkpoint(stage_dir: Path) -> str | None:
        """The newest checkpoint to resume a stage from: Lightning's last.ckpt or a SLURM requeue hpc_ckpt."""
        candidates = [stage_dir / "checkpoints" / "last.ckpt", *stage_dir.glob("hpc_ckpt_*.ckpt")]
        existing = [p for p in candidates if p.exists()]
        return str(max(existing, key=lambda p: p.stat().st_mtime)) if existing else None

    @staticmethod
    def _drop_requeue_checkpoints(stage_dir: Path) -> None:
        """After a stage's fit completed: Lightning would otherwise load a stale hpc_ckpt in later test/predict."""
        if is_rank_zero():
            for path in stage_dir.glob("hpc_ckpt_*.ckpt"):
                path.unlink()
        barrier()

    def _progress(self, generation: int, message: str) -> None:
        if is_rank_zero():
            text = f"[genbias] generation {generation}/{self.loop.generations} - {message}"
            print(text, flush=True)

    # ============================================================================================ the loop
    def run(self) -> list[dict]:
        mode = self.validate()
        launch = launch_id()
        if is_rank_zero():
            self.run_dir.create(self.config_text, mode, launch)
        else:
            wait_for_state(self.run_dir.state_path, config_fingerprint(self.config_text), launch)
        self.run_dir.load()
        if is_rank_zero() and mode == "resume" and self.run_dir.state["completed"]:
            print(f"[genbias] resuming {self.run_dir.path}: {len(self.run_dir.state['completed'])} stages done",
                  flush=True)
        self.stack = self._open_stack()
        self.dm.prepare()
        self.dm.attach_stack(self.stack)
        if self.quality is not None:
            self.quality.setup(self)

        for generation in range(self.loop.generations + 1):
            if generation > 0:
                self._generator_stages(generation)
            for clf in self.classifiers:
                self._classifier_stage(generation, clf)
            if is_rank_zero():
                write_generation_summary(self.run_dir, self.dm.source)
        if is_rank_zero():
            print(f"[genbias] done: {len(self.run_dir.results)} result rows in {self.run_dir.results_path}", flush=True)
        return self.run_dir.results

    # -------------------------------------------------------------------------------------------- generator
    def _generator_stages(self, generation: int) -> None:
        gen_dir = self.run_dir.stage_dir(generation, "generator")
        shard_dir = self.run_dir.stage_dir(generation, "shards")
        key_train, key_generate, key_push = (f"g{generation}/generator", f"g{generation}/generate",
                                             f"g{generation}/push")
        generator = None
        strategy = str(self.trainer_kwargs.get("strategy", "auto"))
        gan_strategy = "ddp_find_unused_parameters_true" if strategy == "ddp" else None
        if self._stage(key_train):
            seed = stage_seed(self.seed, generation, "generator")
            L.seed_everything(seed, workers=True, verbose=False)
            generator = self.generator_template.fresh()
            self._progress(generation, f"training generator {type(generator).__name__} on "
                                       f"{self.dm.n_real} real + {self.dm.n_synthetic} synthetic samples/epoch")
            self.dm.epoch_seed = seed
            batch_size = self.dm.batch_size
            if self.loop.generator_batch_size:
                self.dm.batch_size = self.loop.generator_batch_size
            trainer = self._trainer(
                gen_dir, max_epochs=self.loop.generator_epochs, name=f"gen_{generation:02d}", version="generator",
                callbacks=[ModelCheckpoint(dirpath=gen_dir / "checkpoints", save_last=True, save_top_k=0),
                           EpochSeeder(seed)],
                strategy_override=gan_strategy, num_sanity_val_steps=0, limit_val_batches=0,
            )
            t0 = time.time()
            try:
                trainer.fit(generator, datamodule=self.dm, ckpt_path=self._last_checkpoint(gen_dir))
            finally:
                self.dm.batch_size = batch_size
            self._drop_requeue_checkpoints(gen_dir)
            self._finish(key_train, generator_wall_s={**self.run_dir.state.get("generator_wall_s", {}),
                                                      str(generation): time.time() - t0})
        if self._stage(key_generate):
            S = self.loop.samples_per_generation
            self._progress(generation, f"generating {S} samples")
            seed = stage_seed(self.seed, generation, "generate")
            L.seed_everything(seed, workers=True, verbose=False)
            ckpt = None
            if generator is None:
                generator = self.generator_template.fresh()
                ckpt = self._last_checkpoint(gen_dir)
                if ckpt is None:
                    raise RuntimeError(f"generator stage of generation {generation} is marked done but "
                                       f"{gen_dir}/checkpoints/last.ckpt is missing")
            generator.sample_seed = seed
            self.dm.set_predict_request(S, seed)
            if is_rank_zero() and shard_dir.exists():  # shards of an interrupted attempt (maybe another world size)
                shutil.rmtree(shard_dir)
            barrier()
            trainer = self._trainer(gen_dir, max_epochs=1, name=f"gen_{generation:02d}", version="generate",
                                    callbacks=[ShardWriter(shard_dir)])
            trainer.predict(generator, datamodule=self.dm, return_predictions=False, ckpt_path=ckpt)
            self._finish(key_generate)
        del generator
        if self._stage(key_push):
            if is_rank_zero():
                images, labels = merge_shards(shard_dir, self.loop.samples_per_generation)
                report: dict = {"filter_kept": len(labels), "filter_dropped": 0}
                if self.quality is not None:
                    images, labels, scores, report = self.quality.process_block(self, generation, images, labels)
                else:
                    scores = None
                if generation not in self.stack.generations:  # idempotent when resuming after a crash mid-stage
                    self.stack.push(images, labels, generation, scores=scores)
                blocks = {**self.run_dir.state.get("blocks", {}), str(generation): report}
                self.run_dir.mark_done(key_push, stack=self.stack.manifest, blocks=blocks)
            self._sync_stage(key_push)
        # every rank sees exactly the stack recorded in the state (checksums were verified when the run started and
        # the new block was written by this run: no need to hash millions of images again)
        self.stack = self._open_stack(verify=False)
        self.dm.attach_stack(self.stack)
        self._progress(generation, f"stack holds generations {self.stack.generations} ({len(self.stack)} samples)")

    # -------------------------------------------------------------------------------------------- classifiers
    def _classifier_stage(self, generation: int, clf: ClassifierConfig) -> None:
        key = f"g{generation}/classifier/{clf.label}"
        if not self._stage(key):
            return
        src = self.dm.source
        stage_dir = self.run_dir.stage_dir(generation, "classifiers", clf.label)
        seed = stage_seed(self.seed, generation, f"classifier/{clf.label}")
        L.seed_everything(seed, workers=True, verbose=False)
        self.dm.epoch_seed = seed
        self._progress(generation, f"training {clf.label} on {self.dm.n_real} real + {self.dm.n_synthetic} "
                                   f"synthetic samples/epoch (stack: {self.stack.generations})")
        model = ClassifierModule(
            arch=clf.arch, num_classes=src.num_classes, num_groups=src.num_groups, image_shape=src.image_shape,
            lr=clf.lr, weight_decay=clf.weight_decay, pretrained=clf.pretrained, weights_path=clf.weights_path,
            linear_probe=clf.linear_probe, dropout=clf.dropout, input_size=clf.input_size,
        )
        checkpoint = ModelCheckpoint(dirpath=stage_dir / "checkpoints", monitor="val_loss", mode="min",
                                     save_last=True, save_top_k=1, filename="best")
        callbacks = [checkpoint, EpochSeeder(seed)]
        ablations = AblationEvaluation(src.num_classes) if getattr(src, "has_masks", False) else None
        if ablations is not None:
            callbacks.append(ablations)
        if clf.patience > 0:
            callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=clf.patience))
        trainer = self._trainer(stage_dir, max_epochs=clf.max_epochs, name=f"gen_{generation:02d}",
                                version=clf.label, callbacks=callbacks)
        batch_size = self.dm.batch_size
        if clf.batch_size:
            self.dm.batch_size = clf.batch_size
        t0 = time.time()
        try:
            trainer.fit(model, datamodule=self.dm, ckpt_path=self._last_checkpoint(stage_dir))
        finally:
            self.dm.batch_size = batch_size
        self._drop_requeue_checkpoints(stage_dir)
        best = checkpoint.best_model_path or None  # every rank evaluates the same best weights
        self._progress(generation, f"evaluating {clf.label} on the real test set")
        trainer.test(model, datamodule=self.dm, verbose=False, ckpt_path=best, weights_only=True)
        metrics = model.test_results
        row = {
            "generation": generation,
            "classifier": clf.label,
            "arch": clf.arch,
            "seed": self.seed,
            "dataset": src.name,
            "target_share": self.dm.synthetic_share,
            "synthetic_share": self.dm.realised_share,
            "synthetic_reuse": self.dm.synthetic_reuse,
            # without known subgroups (Hard ImageNet) only accuracy is meaningful
            **{k: (_scalar(metrics[k]) if src.num_groups or k == "acc" else None) for k in METRIC_KEYS},
            "acc_rank": [_scalar(v) for v in metrics["acc_rank"]] if src.num_groups else [],
            "group_acc": [[_scalar(v) for v in r] for r in metrics["group_acc"]] if src.num_groups else [],
            "n_real": self.dm.n_real,
            "n_synthetic": self.dm.n_synthetic,
            "stack_size": len(self.stack),
            "stack_generations": list(self.stack.generations),
            "epochs": int(trainer.current_epoch),
            "wall_s": round(time.time() - t0, 3),
        }
        if ablations is not None:
            row["ablation_acc"] = {k: _scalar(v) for k, v in ablations.results["ablation_acc"].items()}
            row["ablation_drop"] = {k: _scalar(v) for k, v in ablations.results["ablation_drop"].items()}
            row["ablation_acc_class"] = {k: [_scalar(x) for x in v]
                                         for k, v in ablations.results["ablation_acc_class"].items()}
        if self.quality is not None:
            row.update(self.quality.row_extras(self, generation, model))
        if is_rank_zero():
            extra = (f" meo={row['meo']:.4f} di={row['di']:.4f} md={row['md']:.4f}" if src.num_groups else
                     "".join(f" {k}={v:.4f}" for k, v in (row.get("ablation_acc") or {}).items() if k != "clean"))
            print(f"[genbias] generation {generation} {clf.label}: acc={row['acc']:.4f}{extra}", flush=True)
        self._finish(key, row)
