"""A stage resumed from its end-of-epoch checkpoint computes exactly what an uninterrupted stage computes."""

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from callbacks.epoch_seeder import EpochSeeder
from datamodules.colored_mnist import ColoredMNIST
from datamodules.generational import GenerationalDataModule, TrainingSpec
from datamodules.regime import DataRegime
from lightning_modules.classifier import ClassifierModule


def fit(max_epochs: int, ckpt_dir, resume: str | None = None, seeder: bool = True) -> ClassifierModule:
    L.seed_everything(5, verbose=False)
    dm = GenerationalDataModule(ColoredMNIST(max_train_samples=300), regime=DataRegime(synthetic_share=0.0),
                                batch_size=64)
    model = ClassifierModule("tiny_cnn", 10, 3, (3, 28, 28), lr=0.01, dropout=0.3)  # dropout draws random numbers
    callbacks = [ModelCheckpoint(dirpath=ckpt_dir, save_last=True, monitor="val/loss")]
    if seeder:
        callbacks.append(EpochSeeder(5))
    trainer = L.Trainer(accelerator="cpu", max_epochs=max_epochs, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, deterministic=True, use_distributed_sampler=False,
                        callbacks=callbacks)
    trainer.fit(model, datamodule=dm.for_training(TrainingSpec(batch_size=64, epoch_seed=5)), ckpt_path=resume)
    return model


def same_weights(a: ClassifierModule, b: ClassifierModule) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_resuming_mid_stage_from_last_checkpoint_is_exact(tmp_path):
    uninterrupted = fit(2, tmp_path / "a")
    fit(1, tmp_path / "b")  # "killed" after epoch 1: only its last.ckpt survives
    resumed = fit(2, tmp_path / "b", resume=str(tmp_path / "b" / "last.ckpt"))
    assert same_weights(uninterrupted, resumed)


def test_without_the_seeder_a_resumed_stage_draws_other_random_numbers(tmp_path):
    """Guards the test above: it would pass vacuously if resuming were exact anyway."""
    uninterrupted = fit(2, tmp_path / "a", seeder=False)
    fit(1, tmp_path / "b", seeder=False)
    resumed = fit(2, tmp_path / "b", resume=str(tmp_path / "b" / "last.ckpt"), seeder=False)
    assert not same_weights(uninterrupted, resumed)
