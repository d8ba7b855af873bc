"""A stage resumed from its end-of-epoch checkpoint computes exactly what an uninterrupted stage computes."""

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from datamodules.colored_mnist import ColoredMNIST
from datamodules.generational import GenerationalDataModule
from lightning_modules.classifier import ClassifierModule
from simulation.seeding import EpochSeeder, stage_seed


def fit(max_epochs: int, ckpt_dir, resume: str | None = None) -> ClassifierModule:
    L.seed_everything(5, verbose=False)
    dm = GenerationalDataModule(ColoredMNIST(max_train_samples=300), synthetic_share=0.0, batch_size=64)
    dm.epoch_seed = 5
    model = ClassifierModule("tiny_cnn", 10, 3, (3, 28, 28), lr=0.01, dropout=0.3)  # dropout draws random numbers
    trainer = L.Trainer(accelerator="cpu", max_epochs=max_epochs, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, deterministic=True, use_distributed_sampler=False,
                        callbacks=[ModelCheckpoint(dirpath=ckpt_dir, save_last=True, monitor="val_loss"),
                                   EpochSeeder(5)])
    trainer.fit(model, datamodule=dm, ckpt_path=resume)
    return model


def test_resuming_mid_stage_from_last_checkpoint_is_exact(tmp_path):
    uninterrupted = fit(2, tmp_path / "a")
    fit(1, tmp_path / "b")  # "killed" after epoch 1: only its last.ckpt survives
    resumed = fit(2, tmp_path / "b", resume=str(tmp_path / "b" / "last.ckpt"))
    for (name, a), b in zip(uninterrupted.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_stage_seeds_depend_on_seed_generation_and_stage_only():
    assert stage_seed(0, 1, "generator") == stage_seed(0, 1, "generator")
    seeds = {stage_seed(s, g, st) for s in (0, 1) for g in (0, 1) for st in ("generator", "classifier/lenet")}
    assert len(seeds) == 8 and all(0 <= x < 2**31 for x in seeds)
