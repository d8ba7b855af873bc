"""Stages: train a classifier from scratch (or from ImageNet weights) on D_n, then evaluate it on the real test set.

Training keeps the best checkpoint by validation loss (early stopping with ``patience``); evaluation loads it and
runs the test stage's callbacks (per-subgroup fairness, the object-mask ablations), then writes the result row.
"""

from __future__ import annotations

import math
import time

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from callbacks.ablation_evaluation import AblationEvaluation
from callbacks.epoch_seeder import EpochSeeder
from callbacks.subgroup_fairness import SubgroupFairnessEvaluation
from common.distributed import is_rank_zero
from common.seeds import stage_seed
from datamodules.generational import TrainingSpec
from lightning_modules.classifier import ClassifierModule
from metrics.chance import CHANCE_MARGIN, chance_accuracy, near_chance
from records.layout import BEST_CHECKPOINT, checkpoint_dir, generation_name
from records.results import BLOCK, FAIRNESS, PRINTED, ResultRow, metric_names
from records.state import StageKey
from simulation.config import ClassifierConfig
from simulation.stages.base import RunContext, Stage, log


def _scalar(value: torch.Tensor | float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None  # NaN (no sample) and DI_eq3's -inf (x/0) -> null in JSON


def build_classifier(config: ClassifierConfig, source) -> ClassifierModule:
    return ClassifierModule(
        arch=config.arch, num_classes=source.num_classes, num_groups=source.num_groups, image_shape=source.image_shape,
        lr=config.lr, weight_decay=config.weight_decay, pretrained=config.pretrained, weights_path=config.weights_path,
        linear_probe=config.linear_probe, dropout=config.dropout, input_size=config.input_size,
        channels_last=config.channels_last, compile=config.compile,
    )


class TrainClassifier(Stage):
    def __init__(self, generation: int, classifier: ClassifierConfig) -> None:
        self.generation, self.classifier = generation, classifier

    @property
    def key(self) -> StageKey:
        return StageKey.train_classifier(self.generation, self.classifier.label)

    def execute(self, context: RunContext) -> None:
        n, clf, data, run_dir = self.generation, self.classifier, context.data, context.run_dir
        stage_dir = run_dir.classifier_dir(n, clf.label)
        seed = stage_seed(context.seed, n, f"classifier/{clf.label}")
        L.seed_everything(seed, workers=True, verbose=False)
        batch = context.training_batch(clf.batch_size or data.batch_size, clf.lr)
        context.progress(n, f"training {clf.label} on {context.epoch_composition()}; {batch.describe()}")
        model = build_classifier(clf, context.source)
        callbacks = [ModelCheckpoint(dirpath=checkpoint_dir(stage_dir), monitor="val/loss", mode="min",
                                     save_last=True, save_top_k=1, filename=BEST_CHECKPOINT), EpochSeeder(seed)]
        if clf.patience > 0:
            callbacks.append(EarlyStopping(monitor="val/loss", mode="min", patience=clf.patience))
        trainer = context.trainers.build(stage_dir, name=generation_name(n), version=clf.label,
                                         label=context.stage_label(n, clf.label), max_epochs=clf.max_epochs,
                                         callbacks=callbacks, shown_metrics=ClassifierModule.SHOWN_METRICS)
        spec = TrainingSpec(batch_size=batch.per_device, epoch_seed=seed, real_generation=n)
        trainer.logger.log_hyperparams(batch.record())
        started = time.time()
        trainer.fit(model, datamodule=data.for_training(spec), ckpt_path=run_dir.resume_checkpoint(stage_dir),
                    weights_only=True)
        context.trainers.drop_requeue_checkpoints(stage_dir)
        context.finish(self.key, stage_info=run_dir.with_stage_info(
            self.key, epochs=int(trainer.current_epoch), steps=int(trainer.global_step),
            wall_s=round(time.time() - started, 3), **batch.record()))


class EvaluateClassifier(Stage):
    def __init__(self, generation: int, classifier: ClassifierConfig) -> None:
        self.generation, self.classifier = generation, classifier

    @property
    def key(self) -> StageKey:
        return StageKey.evaluate(self.generation, self.classifier.label)

    def execute(self, context: RunContext) -> None:
        n, clf, data, run_dir, source = (self.generation, self.classifier, context.data, context.run_dir,
                                         context.source)
        context.progress(n, f"evaluating {clf.label} on the real test set")
        fairness = SubgroupFairnessEvaluation(source.num_classes, source.num_groups)
        callbacks = [fairness]
        ablations = AblationEvaluation(source.num_classes) if source.has_masks else None
        if ablations is not None:
            callbacks.append(ablations)
        stage_dir = run_dir.classifier_dir(n, clf.label)
        trainer = context.trainers.build(stage_dir, name=generation_name(n), version=clf.label,
                                         label=context.stage_label(n, f"evaluating {clf.label}"), callbacks=callbacks,
                                         enable_checkpointing=False, stage=f"{clf.label}_test")
        spec = TrainingSpec(batch_size=data.batch_size, epoch_seed=0)
        trainer.test(build_classifier(clf, source), datamodule=data.for_training(spec), verbose=False,
                     ckpt_path=str(run_dir.classifier_checkpoint(n, clf.label)), weights_only=True)
        row = self._row(context, fairness.results, ablations)
        if is_rank_zero():
            extra = (f" meo={row.meo:.4f} di={row.di:.4f} md={row.md:.4f}" if source.num_groups else
                     "".join(f" {k}={v:.4f}" for k, v in (row.ablation_acc or {}).items() if k != "clean"))
            log.info(f"generation {n} {clf.label}: acc={row.acc:.4f}{extra}")
            if row.near_chance:
                log.warning(f"generation {n} {clf.label}: accuracy {row.acc:.4f} is within {CHANCE_MARGIN:.0%} of "
                            f"chance (1/{source.num_classes} = {row.chance_acc:.4f}): it has not learned, and its "
                            "fairness numbers describe a classifier that is equally bad for every subgroup, not a "
                            "fair one (more epochs, another lr or more data)")
        context.finish(self.key, [row.to_json()])

    def _row(self, context: RunContext, metrics: dict, ablations: AblationEvaluation | None) -> ResultRow:
        n, clf, data, source = self.generation, self.classifier, context.data, context.source
        grouped = source.num_groups > 0  # without known subgroups (Hard ImageNet) only accuracy is meaningful
        block = context.run_dir.block_report(n)
        trained = context.run_dir.stage_info(StageKey.train_classifier(n, clf.label))
        row = ResultRow(
            generation=n, classifier=clf.label, arch=clf.arch, seed=context.seed, dataset=source.name,
            target_share=data.target_share, realised_synthetic_share=data.realised_synthetic_share,
            synthetic_reuse=data.synthetic_reuse, n_real=data.real_per_epoch, n_synthetic=data.n_synthetic,
            stack_size=data.stack_size, stack_generations=data.stack_generations,
            acc=_scalar(metrics["acc"]),
            **{k: (_scalar(metrics[k]) if grouped else None) for k in
               metric_names(FAIRNESS, PRINTED)},
            acc_rank=[_scalar(v) for v in metrics["acc_rank"]] if grouped else [],
            group_acc=[[_scalar(v) for v in r] for r in metrics["group_acc"]] if grouped else [],
            **{k: block.get(k) for k in metric_names(BLOCK)},
            epochs=int(trained.get("epochs", 0)), wall_s=float(trained.get("wall_s", 0.0)),
            chance_acc=chance_accuracy(source.num_classes),
            near_chance=near_chance(_scalar(metrics["acc"]), source.num_classes),
        )
        if ablations is not None:
            results = ablations.results
            row.ablation_acc = {k: _scalar(v) for k, v in results["ablation_acc"].items()}
            row.ablation_drop = {k: _scalar(v) for k, v in results["ablation_drop"].items()}
            row.ablation_acc_class = {k: [_scalar(x) for x in v] for k, v in results["ablation_acc_class"].items()}
        return row
