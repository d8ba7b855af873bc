"""Device-resident training data: the same batches as the loader path, and the same training."""

import lightning as L
import torch

from callbacks.epoch_seeder import EpochSeeder
from datamodules.device_batches import DeviceResidentBatches
from datamodules.generational import GenerationalDataModule, TrainingSpec
from datamodules.regime import DataRegime
from lightning_modules.classifier import ClassifierModule
from tests.datamodules.test_mixing import FakeSource, push_blocks

SPEC = TrainingSpec(batch_size=16, epoch_seed=3)


def epochs(loader, count: int = 2) -> list[dict[str, torch.Tensor]]:
    batches = []
    for epoch in range(count):
        loader.batch_sampler.sampler.set_epoch(epoch)
        batches += [{key: value.clone() for key, value in batch.items()} for batch in loader]
    return batches


def test_the_device_path_serves_the_loader_paths_batches_in_the_same_order(tmp_path):
    data = GenerationalDataModule(FakeSource(100), regime=DataRegime(synthetic_share=0.5), batch_size=16)
    push_blocks(data, tmp_path, [30, 50])
    loaded = epochs(data.train_loader(SPEC))
    resident = data.train_loader(SPEC, device=torch.device("cpu"))
    assert isinstance(resident, DeviceResidentBatches) and len(resident) == len(data.train_loader(SPEC))
    served = epochs(resident)
    assert len(served) == len(loaded) > 0
    for a, b in zip(served, loaded):
        assert set(a) == set(b) == {"image", "label", "subgroup"}  # named alike, no mask key
        assert all(torch.equal(a[key], b[key]) for key in a)


def test_data_beyond_the_budget_or_seen_through_a_view_keeps_the_loader(tmp_path):
    data = GenerationalDataModule(FakeSource(100), regime=DataRegime(synthetic_share=0.5), batch_size=16,
                                  device_memory_gb=1e-6)
    push_blocks(data, tmp_path, [30])
    assert not isinstance(data.train_loader(SPEC, device=torch.device("cpu")), DeviceResidentBatches)
    off = GenerationalDataModule(FakeSource(100), device_memory_gb=0)
    assert not isinstance(off.train_loader(SPEC, device=torch.device("cpu")), DeviceResidentBatches)


def train(budget_gb: float, tmp_path) -> ClassifierModule:
    L.seed_everything(7, verbose=False)
    data = GenerationalDataModule(FakeSource(100), regime=DataRegime(synthetic_share=0.5), batch_size=16,
                                  device_memory_gb=budget_gb)
    push_blocks(data, tmp_path / str(budget_gb), [40])
    model = ClassifierModule("tiny_cnn", num_classes=4, num_groups=2, image_shape=(1, 8, 8), lr=0.01, dropout=0.2)
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
                        deterministic=True, callbacks=[EpochSeeder(7)], limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=data.for_training(SPEC))
    return model


def test_a_short_training_run_is_the_same_on_both_paths(tmp_path):
    resident, loaded = train(2.0, tmp_path), train(0.0, tmp_path)
    for (name, a), b in zip(resident.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
