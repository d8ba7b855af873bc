"""FID: torchmetrics FID over a classifier or Inception extractor, the seeded subsets, and the generation gate."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from callbacks.generator_fid import GeneratorFID
from common.errors import ConfigError
from common.image_views import ImageView
from datamodules.base import ImageSplit
from metrics.fid import (
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_URL,
    REAL_STATES,
    ClassifierFeatures,
    InceptionFeatures,
    check_inception_weights,
    fid_against_real_statistics,
    fid_metric,
    fid_subset,
    find_inception_weights,
    real_statistics,
)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Reference Frechet distance of two Gaussians (Heusel et al. 2017), NumPy/SciPy only."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


class ProjectionClassifier(nn.Module):
    """Stand-in reference classifier: features = a fixed seeded projection of the pixels; counts images seen."""

    def __init__(self, in_pixels: int, dim: int = 6, num_classes: int = 3) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(7)
        self.register_buffer("projection", torch.randn(in_pixels, dim, generator=generator) / in_pixels**0.5)
        self.head = nn.Linear(dim, num_classes)
        self.images_seen = 0

    def features(self, images: torch.Tensor) -> torch.Tensor:
        assert images.dtype == torch.uint8
        self.images_seen += images.shape[0]
        return images.flatten(1).float() @ self.projection

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def reference_features(model: ProjectionClassifier, images: torch.Tensor) -> np.ndarray:
    return images.flatten(1).double().numpy() @ model.projection.double().numpy()


def gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return features.mean(axis=0), np.cov(features, rowvar=False)


def images(n: int, seed: int, low: int = 0, high: int = 200, shape=(1, 6, 6)) -> torch.Tensor:
    return torch.randint(low, high, (n, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def fid_of(model: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> float:
    metric = fid_metric(ClassifierFeatures(model, tuple(real.shape[1:])))
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


def test_fid_equals_numpy_frechet_distance():
    real, fake = images(120, seed=0), images(90, seed=1, low=30, high=230)
    model = ProjectionClassifier(36)
    fid = fid_of(model, real, fake)
    expected = frechet_distance(*gaussian(reference_features(model, real)), *gaussian(reference_features(model, fake)))
    assert expected > 1.0
    assert abs(fid - expected) / expected < 1e-3


def test_fid_near_zero_for_identical_sets_and_grows_with_shift():
    real = images(150, seed=2)
    model = ProjectionClassifier(36)
    same, small, large = (fid_of(model, real, fake) for fake in (real.clone(), real + 10, real + 40))
    assert abs(same) < 1e-6 * small
    assert 0 < small < large
    assert large / small > 10  # a mean shift enters squared: (40 / 10)^2 = 16


def test_the_fid_subset_is_seeded_capped_and_sorted():
    chosen = fid_subset(300, 100, seed=3, salt=1)
    assert len(chosen) == 100 and len(chosen.unique()) == 100 and torch.equal(chosen, chosen.sort().values)
    assert torch.equal(chosen, fid_subset(300, 100, seed=3, salt=1))
    assert not torch.equal(chosen, fid_subset(300, 100, seed=4, salt=1))
    assert torch.equal(fid_subset(50, 100, seed=3, salt=1), torch.arange(50))


class _Trainer:
    global_rank = 0


class _Module:
    device = torch.device("cpu")


def split_of(images: torch.Tensor) -> ImageSplit:
    zeros = torch.zeros(len(images), dtype=torch.long)
    return ImageSplit(images, zeros, zeros)


def test_the_generation_gate_feeds_its_subset_of_the_block_and_the_real_images():
    """The GeneratorFID callback, fed batch by batch as trainer.predict would, equals the FID of its subsets."""
    model = ProjectionClassifier(36)
    real, block = images(80, seed=3), images(60, seed=4, low=20, high=220)
    real_ids = torch.arange(0, 80, 2)  # the real subset: every other training image
    gate = GeneratorFID(lambda device: ClassifierFeatures(model, (1, 6, 6)), split_of(real), real_ids,
                        ImageView(6), block_size=60, num_samples=40, seed=5, batch_size=16)
    gate.on_predict_start(_Trainer(), _Module())
    for start in range(0, 60, 16):
        ids = torch.arange(start, min(start + 16, 60))
        gate.on_predict_batch_end(_Trainer(), _Module(), {"index": ids, "label": ids % 2, "image": block[ids]}, None, 0)
    gate.on_predict_epoch_end(_Trainer(), _Module())
    chosen = fid_subset(60, 40, seed=5, salt=1)
    assert gate.fid == pytest.approx(fid_of(model, real[real_ids], block[chosen]), rel=1e-9)
    assert gate.fid != pytest.approx(fid_of(model, real, block[chosen]), rel=1e-3)  # only the real subset entered
    assert gate.fid != pytest.approx(fid_of(model, real[real_ids], block), rel=1e-3)  # only the block subset entered
    features = reference_features(model, real[real_ids])
    assert set(gate.real_statistics) == set(REAL_STATES)
    assert int(gate.real_statistics["real_features_num_samples"]) == 40
    assert torch.allclose(gate.real_statistics["real_features_sum"], torch.from_numpy(features.sum(axis=0)))


def test_generated_images_enter_the_gate_through_its_view():
    """Stored 12 x 12 images reach a 6 x 6 extractor through the view (resize 6, crop 6): as if generated at 6."""
    model = ProjectionClassifier(36)
    real, stored = images(50, seed=6), images(30, seed=7, shape=(1, 12, 12))
    view = ImageView(size=6, resize=6)
    gate = GeneratorFID(lambda device: ClassifierFeatures(model, (1, 6, 6)), split_of(real), torch.arange(50),
                        view, block_size=30, num_samples=30, seed=0)
    gate.on_predict_start(_Trainer(), _Module())
    batch = {"index": torch.arange(30), "label": torch.zeros(30, dtype=torch.long), "image": stored}
    gate.on_predict_batch_end(_Trainer(), _Module(), batch, None, 0)
    gate.on_predict_epoch_end(_Trainer(), _Module())
    assert gate.fid == pytest.approx(fid_of(model, real, view(stored)), rel=1e-9)


def test_fid_against_saved_real_statistics_equals_the_fid_of_both_sets():
    """The kept samples' FID: saved real statistics + new fake images = the FID computed from both image sets."""
    model = ProjectionClassifier(36)
    real, kept = images(70, seed=8), images(25, seed=9, low=40, high=250)
    metric = fid_metric(ClassifierFeatures(model, (1, 6, 6)))
    metric.update(real, real=True)
    saved = real_statistics(metric)
    batches = [kept[:10], kept[10:]]
    fid = fid_against_real_statistics(ClassifierFeatures(model, (1, 6, 6)), saved, batches)
    expected = frechet_distance(*gaussian(reference_features(model, real)), *gaussian(reference_features(model, kept)))
    assert expected > 1.0 and abs(fid - expected) / expected < 1e-3
    assert fid == pytest.approx(fid_of(model, real, kept), rel=1e-9)
    itself = fid_metric(ClassifierFeatures(model, (1, 6, 6)))
    itself.update(kept, real=True)  # statistics of the kept images themselves: the FID must vanish
    assert abs(fid_against_real_statistics(ClassifierFeatures(model, (1, 6, 6)), real_statistics(itself),
                                           batches)) < 1e-6 * fid


def test_missing_inception_weights_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ConfigError, match=INCEPTION_WEIGHTS_FILE) as error:
        check_inception_weights(None)
    assert str(tmp_path / "hub" / "checkpoints") in str(error.value)
    assert INCEPTION_WEIGHTS_URL in str(error.value)
    with pytest.raises(ConfigError, match=INCEPTION_WEIGHTS_FILE):
        check_inception_weights(str(tmp_path / "nowhere.pth"))
    assert find_inception_weights(None) is None


def test_inception_weights_found_in_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    os.makedirs(tmp_path / "checkpoints")
    cached = tmp_path / "checkpoints" / INCEPTION_WEIGHTS_FILE
    cached.write_bytes(b"placeholder")
    assert check_inception_weights(None) == str(cached) == find_inception_weights(None)


class NotATensor:
    pass


def test_inception_weights_that_are_not_a_plain_state_dict_are_refused(tmp_path):
    path = tmp_path / INCEPTION_WEIGHTS_FILE
    torch.save({"payload": NotATensor()}, path)
    with pytest.raises(ConfigError, match="plain state dict"):
        InceptionFeatures(str(path))


def random_inception_weights(path: str) -> None:
    """A randomly initialised torch-fidelity Inception-V3 state dict (its constructor insists on loading one)."""
    import torch_fidelity.feature_extractor_inceptionv3 as fidelity

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fidelity, "load_state_dict_from_url", lambda *args, **kwargs: {})
        patch.setattr(fidelity.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *args, **kwargs: None)
        torch.manual_seed(0)
        network = fidelity.FeatureExtractorInceptionV3("random", ["2048"])
    torch.save(network.state_dict(), path)


@pytest.mark.slow
def test_inception_extractor_end_to_end_on_grey_images(tmp_path, request):
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("Inception-V3 on CPU plus a 2048-dim FID takes ~40 s: run with `pytest -m slow`")
    path = str(tmp_path / INCEPTION_WEIGHTS_FILE)
    random_inception_weights(path)
    metric = fid_metric(InceptionFeatures(path))
    metric.update(images(6, seed=0, shape=(1, 16, 16)), real=True)
    metric.update(images(6, seed=1, shape=(1, 16, 16)), real=False)
    assert int(metric.real_features_num_samples) == 6
    assert np.isfinite(float(metric.compute()))
