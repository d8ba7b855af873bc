"""The test stage's fairness callback: what trainer.test measures equals the metrics of the model's predictions."""

import lightning as L
import torch

from callbacks.subgroup_fairness import SubgroupFairnessEvaluation
from common.image_views import ImageView
from datamodules.base import ImageSplit, RealDataSource
from datamodules.facts import DatasetFacts
from datamodules.generational import GenerationalDataModule, TrainingSpec
from lightning_modules.classifier import ClassifierModule
from metrics.fairness import subgroup_metrics


class Noise(RealDataSource):
    facts = DatasetFacts(name="noise", class_names=("a", "b", "c"), image_shape=(3, 16, 16),
                         classifier_view=ImageView(16), group_names=("x", "y"), subgroups="given")

    def load(self):
        g = torch.Generator().manual_seed(1)

        def split(n):
            return ImageSplit(torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=g),
                              torch.randint(0, 3, (n,), generator=g), torch.randint(0, 2, (n,), generator=g))

        return {"train": split(8), "val": split(8), "test": split(77)}


def test_trainer_test_with_the_callback_equals_the_metrics_of_the_predictions():
    torch.manual_seed(0)
    model = ClassifierModule("tiny_cnn", num_classes=3, num_groups=2, image_shape=(3, 16, 16)).eval()
    data = GenerationalDataModule(Noise(), eval_batch_size=10)
    fairness = SubgroupFairnessEvaluation(num_classes=3, num_groups=2)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[fairness])
    trainer.test(model, datamodule=data.for_training(TrainingSpec(batch_size=8, epoch_seed=0)), verbose=False)
    test = data.prepare()["test"]
    with torch.no_grad():
        expected = subgroup_metrics(model(test.images), test.labels, test.groups, 3, 2)
    for key in ("acc", "meo", "di", "md", "meo_class", "di_class", "md_class", "acc_rank", "group_acc"):
        assert torch.allclose(fairness.results[key], expected[key], equal_nan=True), key
    assert abs(float(trainer.callback_metrics["test/md"]) - float(expected["md"])) < 1e-6
