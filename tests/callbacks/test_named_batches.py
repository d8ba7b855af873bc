"""The test stage's evaluation callbacks read the named batches the loaders give (``common.samples.Batch``), through
``trainer.test``: labels and subgroups by name, the object masks by the ``"mask"`` key, which a dataset without masks
leaves out."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from callbacks.ablation_evaluation import AblationEvaluation
from callbacks.subgroup_fairness import SubgroupFairnessEvaluation
from tests.fakes.samples import labelled_loader

LABELS = torch.tensor([0, 0, 0, 1, 1, 1, 0, 1])
SUBGROUPS = 1 - LABELS  # read as labels by mistake, they would score 0 instead of 0.5


class AlwaysClassZero(L.LightningModule):
    """Predicts class 0 for every image: accuracy = the share of class 0, whatever the image or its ablation."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Linear(1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.tensor([5.0, 0.0]).expand(len(images), 2)

    def test_step(self, batch, batch_idx):
        return self(batch["image"])


def run_test(callback, masks: torch.Tensor | None):
    images = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[callback])
    trainer.test(AlwaysClassZero(), labelled_loader(images, LABELS, SUBGROUPS, 4, masks), verbose=False)
    return callback.results


def test_subgroup_fairness_reads_labels_and_subgroups_by_name():
    results = run_test(SubgroupFairnessEvaluation(num_classes=2, num_groups=2), masks=None)
    assert float(results["acc"]) == pytest.approx(0.5)
    # subgroup 1 is exactly class 0 (always right), subgroup 0 class 1 (always wrong)
    assert results["group_tpr"].tolist() == pytest.approx([0.0, 1.0])


def test_the_ablations_read_the_mask_key():
    masks = torch.zeros(8, 1, 8, 8, dtype=torch.bool)
    masks[:, :, 2:6, 2:6] = True
    results = run_test(AblationEvaluation(num_classes=2), masks=masks)
    assert results["ablation_acc"] == pytest.approx({"clean": 0.5, "gray_object": 0.5, "gray_box": 0.5,
                                                     "tile_box": 0.5})


def test_the_ablations_refuse_batches_without_masks_saying_why():
    with pytest.raises(RuntimeError, match='needs test batches with object masks \\(a "mask" key\\)'):
        run_test(AblationEvaluation(num_classes=2), masks=None)
