"""FID of a generator's samples against real images (paper eq. 1): the feature extractors and the FID metric.

torchmetrics' ``FrechetInceptionDistance`` does the statistics; this file only provides the feature extractor and
the subset of samples that enters it:

* ``"inception"``: torch-fidelity's Inception-V3 (the standard FID), from a local weights file; nothing is
  ever downloaded, a missing file is a ConfigError that says what to fetch and where to put it;
* ``"classifier"``: the frozen penultimate features of a reference classifier trained on the real data
  (a domain FID, the usual choice for MNIST-like data and the fallback when Inception weights are absent).

The real side is the same seeded subset of the real training images every generation (eq. 1's "original clean
samples"), so FIDs of different generations share one reference; the generation stage's ``GeneratorFID`` callback
feeds each rank's share of both sides and keeps the real side's statistics (``real_statistics``), against which the
push stage measures the samples the filters kept (``fid_against_real_statistics``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from common.environment import note_weight_file
from common.errors import ConfigError
from common.seeds import index_seed

INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_WEIGHTS_FILE}"
#: torchmetrics' states of the real side: the feature sum, the sum of outer products and the count
REAL_STATES = ("real_features_sum", "real_features_cov_sum", "real_features_num_samples")


def hub_inception_weights_path() -> str:
    """Where torch-fidelity would cache the Inception weights: ``torch.hub.get_dir()/checkpoints/<file>``."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", INCEPTION_WEIGHTS_FILE)


def find_inception_weights(inception_weights: str | None = None) -> str | None:
    """The local Inception weights file to use, or None when there is none (lets the caller fall back)."""
    if inception_weights is not None:
        return inception_weights if os.path.isfile(inception_weights) else None
    cached = hub_inception_weights_path()
    return cached if os.path.isfile(cached) else None


class ClassifierFeatures(nn.Module):
    """uint8 images -> the reference classifier's frozen penultimate features, in float64.

    ``classifier`` is a ``ClassifierModule`` (``features(images)`` gives its penultimate features) that expects
    images of ``image_shape``. float64 output keeps torchmetrics from rounding the FID back to float32. The module
    stays in eval mode (dropout off) whatever ``train()`` is called with, so the features are deterministic.
    """

    def __init__(self, classifier: nn.Module, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.classifier = classifier
        self.classifier.eval()
        self.classifier.requires_grad_(False)
        device = next(classifier.parameters()).device
        example = torch.zeros((1, *image_shape), dtype=torch.uint8, device=device)
        self.num_features = int(self(example).shape[-1])  # torchmetrics sizes its states from this

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
        note_weight_file(weights_path, "Inception-V3 (FID)")
        self.inception = NoTrainInceptionV3(
            name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=weights_path
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        return self.inception(images).double()


def check_inception_weights(inception_weights: str | None) -> str:
    """The Inception weights path; ConfigError naming the file to fetch, the URL and the folder when it is absent."""
    found = find_inception_weights(inception_weights)
    if found is not None:
        return found
    where = (
        f"the configured inception_weights={inception_weights!r} does not exist"
        if inception_weights is not None
        else f"inception_weights is not set and {hub_inception_weights_path()} does not exist"
    )
    raise ConfigError(
        f"Inception-V3 weights for FID not found: {where}. Nothing is downloaded at run time: fetch "
        f"{INCEPTION_WEIGHTS_FILE} from {INCEPTION_WEIGHTS_URL} and either set quality.fid.inception_weights to its "
        f"path or put it in {os.path.dirname(hub_inception_weights_path())}/; or use quality.fid.extractor: classifier"
    )


def fid_metric(feature: ClassifierFeatures | InceptionFeatures, sync: bool = True) -> FrechetInceptionDistance:
    """A torchmetrics FID over ``feature``. States are sums, so under DDP ``compute()`` sums every rank's share of
    both sides: the FID of the whole sets. ``sync=False``: a metric one rank computes alone (no collective call)."""
    return FrechetInceptionDistance(feature=feature, reset_real_features=False, normalize=False, sync_on_compute=sync)


def fid_subset(total: int, num_samples: int, seed: int, salt: int) -> torch.Tensor:
    """Sorted indices of the (seeded) subset of at most ``num_samples`` of ``total`` items that enter the FID."""
    if total <= num_samples:
        return torch.arange(total)
    generator = torch.Generator().manual_seed(index_seed(seed, salt))
    return torch.randperm(total, generator=generator)[:num_samples].sort().values


def real_statistics(metric: FrechetInceptionDistance) -> dict[str, torch.Tensor]:
    """The real side's states summed over every rank (CPU copies; the metric keeps its local states)."""
    with metric.sync_context():
        return {name: getattr(metric, name).detach().cpu().clone().reshape(-1) for name in REAL_STATES}


def fid_against_real_statistics(feature: ClassifierFeatures | InceptionFeatures, statistics: dict[str, torch.Tensor],
                                fake_batches: Iterable[torch.Tensor], device: torch.device | str = "cpu") -> float:
    """FID of ``fake_batches`` (uint8) against saved ``real_statistics``, with ``feature`` on ``device``: the same
    computation as the metric that saved them, without re-reading a real image. Computed by the calling rank
    alone: the statistics are already summed over every rank."""
    metric = fid_metric(feature, sync=False).to(device)
    for name in REAL_STATES:
        current = getattr(metric, name)
        setattr(metric, name, statistics[name].to(current.device, current.dtype).reshape(current.shape))
    for batch in fake_batches:
        metric.update(batch.to(device), real=False)
    return float(metric.compute())
