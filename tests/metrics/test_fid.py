"""FIDScorer: torchmetrics FID with a classifier or Inception extractor, real statistics computed once."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from common.errors import ConfigError
from metrics.fid import INCEPTION_WEIGHTS_FILE, FIDScorer, find_inception_weights


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


def test_fid_equals_numpy_frechet_distance():
    real, fake = images(120, seed=0), images(90, seed=1, low=30, high=230)
    model = ProjectionClassifier(36)
    scorer = FIDScorer("classifier", num_samples=1000, reference=model, batch_size=32)
    scorer.set_real(real)
    fid = scorer.score(fake)
    expected = frechet_distance(*gaussian(reference_features(model, real)), *gaussian(reference_features(model, fake)))
    assert expected > 1.0
    assert abs(fid - expected) / expected < 1e-3
    assert scorer.extractor_name == "classifier:ProjectionClassifier"


def test_fid_near_zero_for_identical_sets_and_grows_with_shift():
    real = images(150, seed=2)
    scorer = FIDScorer("classifier", num_samples=1000, reference=ProjectionClassifier(36))
    scorer.set_real(real)
    same = scorer.score(real.clone())
    small = scorer.score(real + 10)
    large = scorer.score(real + 40)
    assert abs(same) < 1e-6 * small
    assert 0 < small < large
    assert large / small > 10  # a mean shift enters squared: (40 / 10)^2 = 16


def test_real_statistics_are_computed_once_and_kept():
    real = images(80, seed=3)
    model = ProjectionClassifier(36)
    scorer = FIDScorer("classifier", num_samples=1000, reference=model)
    scorer.set_real(real)
    seen_after_real = model.images_seen  # the real set (+1 image to probe the feature size)
    assert seen_after_real in (80, 81)
    fake_a, fake_b = images(40, seed=4, low=20, high=220), images(50, seed=5, low=50, high=250)
    fid_a, fid_b = scorer.score(fake_a), scorer.score(fake_b)
    assert fid_a != pytest.approx(fid_b)
    assert model.images_seen == seen_after_real + 40 + 50  # the real side was never extracted again
    assert scorer.num_real == 80
    assert scorer.score(fake_a) == pytest.approx(fid_a, rel=1e-9)  # fake side fully reset, real side unchanged


def test_num_samples_caps_both_sets_with_a_seeded_subset():
    model = ProjectionClassifier(36)
    real, fake = images(300, seed=6), images(250, seed=7, low=10, high=210)
    first = FIDScorer("classifier", num_samples=100, reference=model, seed=3)
    first.set_real(real)
    seen = model.images_seen
    value = first.score(fake)
    assert first.num_real == 100
    assert model.images_seen - seen == 100
    second = FIDScorer("classifier", num_samples=100, reference=model, seed=3)
    second.set_real(real)
    assert second.score(fake) == pytest.approx(value, rel=1e-9)


def test_score_before_set_real_and_bad_inputs():
    scorer = FIDScorer("classifier", num_samples=10, reference=ProjectionClassifier(36))
    with pytest.raises(RuntimeError, match="set_real"):
        scorer.score(images(4, seed=0))
    with pytest.raises(ConfigError, match="uint8"):
        scorer.set_real(images(4, seed=0).float())
    with pytest.raises(ConfigError, match="extractor"):
        FIDScorer("vgg", num_samples=10)
    with pytest.raises(ConfigError, match="reference"):
        FIDScorer("classifier", num_samples=10)
    with pytest.raises(ConfigError, match="num_samples"):
        FIDScorer("classifier", num_samples=1, reference=ProjectionClassifier(36))


def test_missing_inception_weights_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ConfigError, match=INCEPTION_WEIGHTS_FILE) as error:
        FIDScorer("inception", num_samples=10)
    assert str(tmp_path / "hub" / "checkpoints") in str(error.value)
    with pytest.raises(ConfigError, match=INCEPTION_WEIGHTS_FILE):
        FIDScorer("inception", num_samples=10, inception_weights=str(tmp_path / "nowhere.pth"))
    assert find_inception_weights(None) is None


def test_inception_weights_found_in_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    os.makedirs(tmp_path / "checkpoints")
    cached = tmp_path / "checkpoints" / INCEPTION_WEIGHTS_FILE
    cached.write_bytes(b"placeholder")
    scorer = FIDScorer("inception", num_samples=10)  # only the file's presence is checked before set_real
    assert scorer.check_available() == str(cached)
    assert scorer.extractor_name == "inception-v3"


class NotATensor:
    pass


def test_inception_weights_that_are_not_a_plain_state_dict_are_refused(tmp_path):
    path = tmp_path / INCEPTION_WEIGHTS_FILE
    torch.save({"payload": NotATensor()}, path)
    scorer = FIDScorer("inception", num_samples=10, inception_weights=str(path))
    with pytest.raises(ConfigError, match="plain state dict"):
        scorer.set_real(images(4, seed=0))


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
    scorer = FIDScorer("inception", num_samples=8, inception_weights=path)
    real = images(6, seed=0, shape=(1, 16, 16))
    scorer.set_real(real)
    assert scorer.num_real == 6
    assert np.isfinite(scorer.score(images(6, seed=1, shape=(1, 16, 16))))
