"""Stage (once per run, where needed): train the learned subgroup oracle on the real data's (class, subgroup) cells.

Datasets whose subgroup cannot be read from the pixels (CIFAR-20/100's fine class, BREEDS Living-17's ImageNet
subclass) need it to measure u_t of the generated blocks; it is trained like any classifier stage (seeded,
resumable, DDP), on real data only, seen through the classifiers' view (in memory or decoded lazily from files).
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from callbacks.block_statistics import OracleFactory
from callbacks.epoch_seeder import EpochSeeder
from common.seeds import stage_seed
from datamodules.generational import TrainingSpec
from lightning_modules.classifier import ClassifierModule
from lightning_modules.subgroup_oracle import FineClassOracle
from records.state import StageKey
from simulation.stages.base import RunContext, Stage


def needs_learned_oracle(context: RunContext) -> bool:
    """The dataset's card asks for a learned oracle (its subgroups cannot be read from the pixels) and one is set."""
    return context.source.facts.oracle == "learned" and context.quality.oracle is not None


def subgroup_oracle(context: RunContext) -> OracleFactory | None:
    """How the block's subgroups are read, as the dataset's card says: its pixels, the learned oracle, or not at all
    (u_t null)."""
    source = context.source
    if source.facts.oracle == "pixels":
        return lambda device: lambda images, labels: source.subgroups_from_pixels(images)
    if not needs_learned_oracle(context):
        return None
    checkpoint = str(context.run_dir.oracle_checkpoint)
    return lambda device: FineClassOracle(ClassifierModule.from_checkpoint(checkpoint, device),
                                          source.num_classes, source.num_groups, device)


class TrainSubgroupOracle(Stage):
    generation = 0
    key = StageKey.oracle()

    def execute(self, context: RunContext) -> None:
        config, source, run_dir = context.quality.oracle, context.source, context.run_dir
        seed = stage_seed(context.seed, 0, "oracle")
        L.seed_everything(seed, workers=True, verbose=False)
        cells = source.num_classes * source.num_groups
        batch = context.training_batch(config.batch_size, config.lr)
        context.progress(0, f"training the subgroup oracle ({config.arch} over the {cells} class x "
                            f"{source.facts.subgroup_noun} cells of the real data); {batch.describe()}")
        model = ClassifierModule(config.arch, cells, 0, source.image_shape, lr=config.lr)
        checkpoints = run_dir.oracle_checkpoint.parent
        callbacks = [ModelCheckpoint(dirpath=checkpoints, monitor="val/loss", mode="min", save_last=True,
                                     save_top_k=1, filename="best"),
                     EarlyStopping(monitor="val/loss", patience=config.patience), EpochSeeder(seed)]
        trainer = context.trainers.build(run_dir.oracle_dir, name="oracle", version="oracle",
                                         label=context.stage_label(0, "subgroup oracle"),
                                         max_epochs=config.max_epochs, callbacks=callbacks,
                                         shown_metrics=ClassifierModule.SHOWN_METRICS)
        spec = TrainingSpec(batch_size=batch.per_device, epoch_seed=seed, cells=True)
        trainer.logger.log_hyperparams(batch.record())
        trainer.fit(model, datamodule=context.data.for_training(spec),
                    ckpt_path=run_dir.resume_checkpoint(run_dir.oracle_dir), weights_only=True)
        context.trainers.drop_requeue_checkpoints(run_dir.oracle_dir)
        context.finish(self.key, stage_info=run_dir.with_stage_info(self.key, **batch.record()))
