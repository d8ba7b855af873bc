"""StepTiming on a fake clock: the network's forward, the backward and the loader each take known time."""

import json
from types import SimpleNamespace

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

import callbacks.step_timing as step_timing
from callbacks.step_timing import StepTiming
from common.samples import make_sample
from lightning_modules.classifier import ClassifierModule

CLOCK = SimpleNamespace(now=0.0)
FORWARD, BACKWARD, LOAD_PER_BATCH, BATCH, BATCHES = 3.0, 2.0, 1.0, 4, 5


class Tick(torch.autograd.Function):
    """Identity whose backward takes BACKWARD seconds of fake time."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        CLOCK.now += BACKWARD
        return grad


class SlowNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)

    def forward(self, x):
        CLOCK.now += FORWARD
        return Tick.apply(self.linear(x))


class SlowData(Dataset):
    def __len__(self) -> int:
        return BATCH * BATCHES

    def __getitem__(self, index):
        CLOCK.now += LOAD_PER_BATCH / BATCH
        return make_sample(torch.ones(2), index % 2, -1)  # a named sample, as every split gives


class Module(L.LightningModule):
    """A module that is not a classifier: its forward is timed from the batch's start."""

    def __init__(self) -> None:
        super().__init__()
        self.body = SlowNet()

    def training_step(self, batch, batch_idx):
        return torch.nn.functional.cross_entropy(self.body(batch["image"]), batch["label"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Classifier(ClassifierModule):
    """A ClassifierModule whose network is the slow one (built without the architecture registry)."""

    def __init__(self) -> None:
        L.LightningModule.__init__(self)
        self.net = SlowNet()

    def training_step(self, batch, batch_idx):
        return torch.nn.functional.cross_entropy(self.net(batch["image"]), batch["label"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(module, tmp_path, monkeypatch) -> list[dict]:
    monkeypatch.setattr(step_timing, "time", SimpleNamespace(perf_counter=lambda: CLOCK.now))
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        callbacks=[StepTiming()])
    trainer.fit(module, DataLoader(SlowData(), batch_size=BATCH))
    assert trainer.callback_metrics["timing/outside_model_fraction"] > 0
    return [json.loads(line) for line in (tmp_path / "step_timing.jsonl").read_text().splitlines()]


def test_model_time_is_forward_plus_backward_and_the_rest_is_outside(tmp_path, monkeypatch):
    records = fit(Classifier(), tmp_path, monkeypatch)
    assert [r["epoch"] for r in records] == [0, 1]
    for record in records:
        assert record["samples"] == BATCH * BATCHES
        assert record["model_s"] == BATCHES * (FORWARD + BACKWARD)
        # the loader's time is outside the model: the batches fetched within the epoch's span
        outside = record["epoch_s"] - record["model_s"]
        assert (BATCHES - 1) * LOAD_PER_BATCH <= outside <= (BATCHES + 1) * LOAD_PER_BATCH
        assert record["outside_model_fraction"] == round(outside / record["epoch_s"], 6)


def test_without_a_classifiers_net_forward_is_timed_from_the_batchs_start(tmp_path, monkeypatch):
    records = fit(Module(), tmp_path, monkeypatch)
    assert all(r["model_s"] == BATCHES * (FORWARD + BACKWARD) for r in records)
