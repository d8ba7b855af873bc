"""A learned subgroup oracle: a fine-class classifier trained on the real data (for CIFAR-20/100's u_t).

Where the subgroup cannot be read from the pixels (Colorized MNIST's stroke colour can: the dataset provides
``subgroup_oracle``), the imbalance u_t of a generated block needs a model that tells which subgroup a generated
image belongs to. This trains a classifier on the real training data over the L x G (class, subgroup) cells; for
a generated image of intended class c its subgroup is the most likely of class c's G cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader

from datamodules.base import ImageSplit
from lightning_modules.classifier import ClassifierModule


@dataclass
class OracleConfig:
    """Fine-class subgroup oracle (used when the dataset has subgroups but no pixel-level oracle, e.g. CIFAR-20/100).

    Args:
        arch: classifier architecture (registry name).
        max_epochs: maximum training epochs (early stopping on validation loss).
        lr: Adam learning rate.
        patience: early-stopping patience.
        batch_size: training batch size.
    """

    arch: str = "resnet18"
    max_epochs: int = 20
    lr: float = 1e-3
    patience: int = 3
    batch_size: int = 128


def _cells(split: ImageSplit, num_groups: int) -> ImageSplit:
    keep = split.groups >= 0
    return ImageSplit(split.images[keep], split.labels[keep] * num_groups + split.groups[keep], split.groups[keep])


class FineClassOracle:
    """Subgroup of each image given its intended class, from a classifier over (class, subgroup) cells."""

    def __init__(self, model: ClassifierModule, num_classes: int, num_groups: int, device: str = "cpu") -> None:
        self.model = model.eval().to(device)
        self.num_classes, self.num_groups, self.device = num_classes, num_groups, device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        groups = []
        for start in range(0, len(images), 512):
            logits = self.model(images[start : start + 512].to(self.device)).float().cpu()
            cells = logits.view(-1, self.num_classes, self.num_groups)
            chosen = cells[torch.arange(len(cells)), labels[start : start + 512].long()]
            groups.append(chosen.argmax(dim=1))
        return torch.cat(groups) if groups else torch.empty(0, dtype=torch.long)


def fine_class_oracle(config: OracleConfig, splits: dict, num_classes: int, num_groups: int, out_dir: Path,
                      seed: int, accelerator: str = "cpu") -> FineClassOracle:
    """Train the oracle once per run (kept in ``out_dir``; reloaded on resume)."""
    from simulation.quality import load_classifier

    checkpoint = out_dir / "checkpoints" / "oracle.ckpt"
    device = "cuda" if accelerator != "cpu" and torch.cuda.is_available() else "cpu"
    if not checkpoint.exists():
        L.seed_everything(seed, workers=True, verbose=False)
        model = ClassifierModule(config.arch, num_classes * num_groups, 0, tuple(splits["train"].images.shape[1:]),
                                 lr=config.lr)
        train, val = _cells(splits["train"], num_groups), _cells(splits["val"], num_groups)
        saver = ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="oracle", monitor="val_loss", mode="min")
        trainer = L.Trainer(accelerator="gpu" if device == "cuda" else "cpu", devices=1, max_epochs=config.max_epochs,
                            default_root_dir=str(out_dir), logger=False, enable_progress_bar=False,
                            enable_model_summary=False,
                            callbacks=[saver, EarlyStopping(monitor="val_loss", patience=config.patience)])
        print(f"[genbias] training the subgroup oracle ({config.arch} over {num_classes * num_groups} "
              "class x subgroup cells of the real data)", flush=True)
        trainer.fit(model, DataLoader(train, batch_size=config.batch_size, shuffle=True),
                    DataLoader(val, batch_size=512))
    return FineClassOracle(load_classifier(str(checkpoint), device), num_classes, num_groups, device)
