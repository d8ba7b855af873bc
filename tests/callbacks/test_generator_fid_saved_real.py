"""The FID gate's real side is computed once per run: given the statistics an earlier generation saved, it reads no
real image and measures the block exactly as recomputing them would."""

from __future__ import annotations

import pytest
import torch

from callbacks.generator_fid import GeneratorFID
from common.image_views import ImageView
from metrics.fid import ClassifierFeatures
from tests.metrics.test_fid import ProjectionClassifier, _Module, _Trainer, fid_of, images, split_of


class Unreadable(torch.utils.data.Dataset):
    """A real split that fails when read: the gate must not touch it."""

    images = None

    def __getitem__(self, index):
        raise AssertionError("the real images were read again")


def run_gate(gate: GeneratorFID, block: torch.Tensor) -> GeneratorFID:
    gate.on_predict_start(_Trainer(), _Module())
    batch = {"index": torch.arange(len(block)), "label": torch.zeros(len(block), dtype=torch.long), "image": block}
    gate.on_predict_batch_end(_Trainer(), _Module(), batch, None, 0)
    gate.on_predict_epoch_end(_Trainer(), _Module())
    return gate


def test_saved_real_statistics_give_the_recomputed_fid_without_reading_a_real_image():
    model = ProjectionClassifier(36)
    real, block_1, block_2 = images(60, seed=1), images(30, seed=2, low=30), images(30, seed=3, low=60)

    def gate(real_split, saved=None) -> GeneratorFID:
        return GeneratorFID(lambda device: ClassifierFeatures(model, (1, 6, 6)), real_split, torch.arange(60),
                            ImageView(6), block_size=30, num_samples=30, seed=0, batch_size=16,
                            saved_real_statistics=saved)

    first = run_gate(gate(split_of(real)), block_1)  # generation 1 computes and saves the real side
    recomputed = run_gate(gate(split_of(real)), block_2)
    reused = run_gate(gate(Unreadable(), saved=first.real_statistics), block_2)  # generation 2 reuses it
    assert reused.fid == recomputed.fid
    assert reused.fid == pytest.approx(fid_of(model, real, block_2), rel=1e-9)
    assert reused.fid != pytest.approx(first.fid, rel=1e-3)  # the block, not the saved side, decides
    for name, value in recomputed.real_statistics.items():
        assert torch.equal(reused.real_statistics[name], value)  # what generation 2 saves for its kept samples
