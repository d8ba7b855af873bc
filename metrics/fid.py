"""FID of a generator's samples against real images (DESIGN.md section 3 "FID", paper eq. 1).

torchmetrics' ``FrechetInceptionDistance`` does the statistics; this file only chooses the feature extractor
and keeps the real side fixed across generations:

* ``"inception"``: torch-fidelity's Inception-V3 (the standard FID), from a local weights file; nothing is
  ever downloaded, a missing file is a ConfigError that says what to fetch and where to put it;
* ``"classifier"``: the frozen penultimate features of a reference classifier trained on the real data
  (a domain FID, the usual choice for MNIST-like data and the fallback when Inception weights are absent).

The real statistics are computed once (``set_real``) and kept (``reset_real_features=False``); every
``score`` call resets only the fake side, so FIDs of different generations share one reference.
"""

from __future__ import annotations

import os
from typing import Literal

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from common.errors import ConfigError

INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_WEIGHTS_FILE}"
EXTRACTORS = ("inception", "classifier")


def hub_inception_weights_path() -> str:
    """Where torch-fidelity would cache the Inception weights: ``torch.hub.get_dir()/checkpoints/<file>``."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", INCEPTION_WEIGHTS_FILE)


def find_inception_weights(inception_weights: str | None = None) -> str | None:
    """The local Inception weights file to use, or None when there is none (lets the caller fall back)."""
    if inception_weights is not None:
        return inception_weights if os.path.isfile(inception_weights) else None
    cached = hub_inception_weights_path()
    return cached if os.path.isfile(cached) else None


def _check_uint8_images(images: torch.Tensor, what: str) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise ConfigError(f"{what} must be a uint8 tensor (N, C, H, W) in [0, 255], got {got}; convert with to_uint8")
    if images.shape[0] < 2:
        raise ConfigError(f"{what} holds {images.shape[0]} image(s); FID needs at least 2 to estimate a covariance")


class ClassifierFeatures(nn.Module):
    """uint8 images -> the reference classifier's frozen penultimate features, in float64.

    float64 output keeps torchmetrics from rounding the FID back to float32. The module stays in eval
    mode (dropout off) whatever ``train()`` is called with, so the features are deterministic.
    """

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        if not callable(getattr(classifier, "features", None)):
            raise ConfigError(
                f"the FID reference {type(classifier).__name__} has no features(images_uint8) method; "
                "pass a classifier whose features() returns its penultimate (B, D) features"
            )
        self.classifier = classifier
        self.classifier.eval()
        self.classifier.requires_grad_(False)

    def train(self, mode: bool = True) -> ClassifierFeatures:
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.classifier.features(images)
        return features.reshape(images.shape[0], -1).double()


class InceptionFeatures(nn.Module):
    """uint8 images of any size and 1 or 3 channels -> Inception-V3 pool features (2048).

    torch-fidelity's network resizes to 299 itself; grey images are repeated to 3 channels.
    """

    num_features = 2048

    def __init__(self, weights_path: str) -> None:
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        # torch-fidelity re-reads the file with weights_only=False: prove first it is a plain tensor state dict.
        try:
            torch.load(weights_path, map_location="cpu", weights_only=True)
        except Exception as error:  # any failure means the file is not usable
            raise ConfigError(
                f"Inception weights {weights_path} cannot be read as a plain state dict ({error}); "
                f"replace it with torch-fidelity's {INCEPTION_WEIGHTS_FILE} from {INCEPTION_WEIGHTS_URL}"
            ) from error
        self.inception = NoTrainInceptionV3(
            name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=weights_path
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        return self.inception(images).double()


class FIDScorer:
    """FID of generated images against a fixed set of real images.

    ``num_samples`` caps both sides; larger sets are subsampled without replacement by a generator seeded
    with ``seed`` (the same subset every call). ``device`` is where features are extracted; the reference
    classifier (``extractor="classifier"``) is moved there and set to eval mode. With ``sync_distributed``
    False (default) every process computes FID on what it is given: call it on one rank, or give every
    rank the full sets; True sums the statistics over ranks (each rank passes its own shard).
    """

    def __init__(
        self,
        extractor: Literal["inception", "classifier"],
        num_samples: int,
        reference: nn.Module | None = None,
        inception_weights: str | None = None,
        batch_size: int = 256,
        device: str = "cpu",
        seed: int = 0,
        sync_distributed: bool = False,
    ) -> None:
        if extractor not in EXTRACTORS:
            raise ConfigError(f"FIDScorer.extractor must be one of {EXTRACTORS}, got {extractor!r}")
        if int(num_samples) < 2:
            raise ConfigError(f"FIDScorer.num_samples must be >= 2 (a covariance needs 2 samples), got {num_samples}")
        if int(batch_size) < 1:
            raise ConfigError(f"FIDScorer.batch_size must be >= 1, got {batch_size}")
        if extractor == "classifier" and reference is None:
            raise ConfigError(
                "FIDScorer(extractor='classifier') needs reference=<a classifier trained on the real data>; "
                "pass it, or use extractor='inception' with inception_weights"
            )
        self.extractor = extractor
        self.num_samples = int(num_samples)
        self.reference = reference
        self.inception_weights = inception_weights
        self.batch_size = int(batch_size)
        self.device = device
        self.seed = int(seed)
        self.sync_distributed = bool(sync_distributed)
        self._metric: FrechetInceptionDistance | None = None
        if extractor == "inception":
            self.check_available()

    @property
    def extractor_name(self) -> str:
        """What the FID was computed with, for the log line and the results row."""
        if self.extractor == "inception":
            return "inception-v3"
        return f"classifier:{type(self.reference).__name__}"

    def check_available(self) -> str:
        """Return the Inception weights path; ConfigError naming the file to fetch when it is absent."""
        if self.extractor != "inception":
            return ""
        found = find_inception_weights(self.inception_weights)
        if found is not None:
            return found
        where = (
            f"the configured inception_weights={self.inception_weights!r} does not exist"
            if self.inception_weights is not None
            else f"inception_weights is not set and {hub_inception_weights_path()} does not exist"
        )
        raise ConfigError(
            f"Inception-V3 weights for FID not found: {where}. Nothing is downloaded at run time: fetch "
            f"{INCEPTION_WEIGHTS_FILE} from {INCEPTION_WEIGHTS_URL} and either set inception_weights to its path "
            f"or put it in {os.path.dirname(hub_inception_weights_path())}/; or use extractor='classifier'"
        )

    def _build_metric(self, example: torch.Tensor) -> FrechetInceptionDistance:
        if self.extractor == "inception":
            feature: nn.Module = InceptionFeatures(self.check_available())
        else:
            feature = ClassifierFeatures(self.reference.to(self.device))
            with torch.no_grad():
                feature.num_features = int(feature(example[:1].to(self.device)).shape[-1])
        metric = FrechetInceptionDistance(
            feature=feature, reset_real_features=False, normalize=False, sync_on_compute=self.sync_distributed
        )
        return metric.to(self.device)

    def _subset(self, images: torch.Tensor, salt: int) -> torch.Tensor:
        if images.shape[0] <= self.num_samples:
            return images
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + salt)
        chosen = torch.randperm(images.shape[0], generator=generator)[: self.num_samples]
        return images[chosen.sort().values]

    def _update(self, images: torch.Tensor, real: bool) -> None:
        for start in range(0, images.shape[0], self.batch_size):
            self._metric.update(images[start : start + self.batch_size].to(self.device), real=real)

    def set_real(self, real_images: torch.Tensor) -> None:
        """Extract and keep the real statistics; call once (again only to change the reference set)."""
        _check_uint8_images(real_images, "FID real images")
        self._metric = self._build_metric(real_images)
        self._update(self._subset(real_images, salt=0), real=True)

    @property
    def num_real(self) -> int:
        return 0 if self._metric is None else int(self._metric.real_features_num_samples)

    def score(self, fake_images: torch.Tensor) -> float:
        """FID of ``fake_images`` (uint8 (N, C, H, W)) against the real statistics."""
        if self._metric is None:
            raise RuntimeError("FIDScorer.score called before set_real(real_images)")
        _check_uint8_images(fake_images, "FID generated images")
        self._metric.reset()  # keeps the real statistics (reset_real_features=False)
        self._update(self._subset(fake_images, salt=1), real=False)
        return float(self._metric.compute())
