"""Evaluate one fixed classifier on a fake test set with N processes and print the metrics (rank 0) as JSON.

Run by tests/simulation/test_distributed.py as a script, because Lightning's DDP launcher re-executes it per rank.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import lightning as L  # noqa: E402
import torch  # noqa: E402

from callbacks.subgroup_fairness import SubgroupFairnessEvaluation  # noqa: E402
from common.image_views import ImageView
from datamodules.base import ImageSplit, RealDataSource  # noqa: E402
from datamodules.facts import DatasetFacts
from datamodules.generational import GenerationalDataModule, TrainingSpec  # noqa: E402
from datamodules.regime import DataRegime
from lightning_modules.classifier import ClassifierModule  # noqa: E402


class OddSizedSource(RealDataSource):
    """101 test images: not divisible by 2 or 3 ranks, so a padding sampler would count duplicates."""

    facts = DatasetFacts(name="odd", class_names=tuple("abcd"), image_shape=(3, 16, 16),
                         classifier_view=ImageView(16), group_names=tuple("xyz"), subgroups="given")

    def load(self):
        g = torch.Generator().manual_seed(0)

        def split(n):
            images = torch.randint(0, 256, (n, 3, 16, 16), generator=g, dtype=torch.uint8)
            return ImageSplit(images, torch.randint(0, 4, (n,), generator=g), torch.randint(0, 3, (n,), generator=g))

        return {"train": split(8), "val": split(8), "test": split(101)}


def main(devices: int, checkpoint: str) -> None:
    model = ClassifierModule("tiny_cnn", num_classes=4, num_groups=3, image_shape=(3, 16, 16))
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    dm = GenerationalDataModule(OddSizedSource(), regime=DataRegime(synthetic_share=0.0), eval_batch_size=16)
    fairness = SubgroupFairnessEvaluation(num_classes=4, num_groups=3)
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto", logger=False,
                        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
                        callbacks=[fairness])
    trainer.test(model, datamodule=dm.for_training(TrainingSpec(batch_size=16, epoch_seed=0)), verbose=False)
    if trainer.global_rank == 0:
        results = {k: v.tolist() for k, v in fairness.results.items()}
        print("RESULTS " + json.dumps({"world_size": trainer.world_size, **results}), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
