"""Uncertainty filter: drop the samples the previous generation's classifier is least sure about (paper 3.2).

The classifier runs T Monte-Carlo dropout passes (Gal & Ghahramani 2016) and its softmax is averaged; the score is
``label_probability`` (default): the mean probability of the label the generator was asked for, so an image the
classifier confidently puts in another class scores low; or ``entropy``: minus the predictive entropy, which only
asks whether the classifier is sure of *some* class. The model is in eval mode (batch norm frozen) with only its
dropout modules sampling. A model without dropout modules gets one deterministic pass (the same score on a plain
softmax) and a warning, since MC dropout is then impossible; the loop's validation refuses such a
``quality.filter_classifier`` before any work. The dropout masks of a batch are seeded from (seed, generation, the
batch's first sample id): the generation stage scores aligned batches of consecutive ids, so the scores are the same
however many ranks score them, and a rerun gives the same scores.
"""

from __future__ import annotations

import logging
import warnings
from typing import Literal

import torch
from torch import nn

from common.errors import ConfigError
from common.seeds import index_seed

from .base import FilterContext, Needs, Scorer

log = logging.getLogger(__name__)

DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
SCORES = ("label_probability", "entropy")


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """The dropout modules that actually drop something (p > 0)."""
    return [module for module in model.modules() if isinstance(module, DROPOUT_TYPES) and module.p > 0]


def predictive_entropy(mean_probabilities: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each row of (N, L) probabilities; 0 * log 0 counts as 0."""
    return torch.special.entr(mean_probabilities).sum(dim=-1)


def label_probability(mean_probabilities: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The probability each row of (N, L) probabilities gives to its requested label (N,)."""
    return mean_probabilities.gather(1, labels.long().view(-1, 1).to(mean_probabilities.device)).squeeze(1)


class UncertaintyFilter(Scorer):
    """Keeps the generated samples on which the previous classifier is most certain."""

    name = "uncertainty"
    needs = Needs(previous_classifier=True, mc_dropout=True)

    def __init__(
        self,
        ratio: float,
        per_class: bool = True,
        mode: Literal["quantile", "range"] = "quantile",
        score: Literal["label_probability", "entropy"] = "label_probability",
        mc_passes: int = 10,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(ratio, per_class, mode)
        if score not in SCORES:
            raise ConfigError(
                f"UncertaintyFilter.score must be one of {list(SCORES)}, got {score!r}: 'label_probability' scores "
                "the MC-dropout probability of the requested label, 'entropy' minus the predictive entropy"
            )
        if int(mc_passes) < 1:
            raise ConfigError(
                f"UncertaintyFilter.mc_passes must be >= 1 (number of MC dropout passes), got {mc_passes}"
            )
        if int(batch_size) < 1:
            raise ConfigError(f"UncertaintyFilter.batch_size must be >= 1, got {batch_size}")
        self.score_kind = score
        self.mc_passes = int(mc_passes)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self._warned = False

    @torch.no_grad()
    def score(self, images: torch.Tensor, labels: torch.Tensor, context: FilterContext) -> torch.Tensor:
        if context.previous_classifier is None:
            raise ConfigError(
                f"UncertaintyFilter at generation {context.generation} needs the previous generation's classifier "
                "(context.previous_classifier is None); train generation 0 first or remove this filter"
            )
        model = context.previous_classifier.to(context.device)
        dropouts = dropout_modules(model)
        passes = self.mc_passes if dropouts else 1
        if not dropouts and not self._warned:
            self._warned = True
            message = (
                f"UncertaintyFilter: {type(model).__name__} has no dropout module with p > 0, so MC dropout is "
                f"impossible; scoring the {self.score_kind.replace('_', ' ')} of a single softmax pass instead"
            )
            warnings.warn(message, stacklevel=2)
            log.warning(message)
        modes = {module: module.training for module in model.modules()}
        device = torch.device(context.device)
        rng_devices = [device.index or 0] if device.type == "cuda" else []
        try:
            model.eval()
            for module in dropouts:
                module.train()
            with torch.random.fork_rng(devices=rng_devices):
                first_id = int(context.sample_ids.min()) if len(context.sample_ids) else 0
                torch.manual_seed(index_seed(index_seed(self.seed, context.generation), first_id))
                scores = []
                for start in range(0, images.shape[0], self.batch_size):
                    batch = images[start : start + self.batch_size].to(device)
                    mean_probabilities = sum(model(batch).float().softmax(dim=-1) for _ in range(passes)) / passes
                    if self.score_kind == "entropy":
                        scores.append(-predictive_entropy(mean_probabilities))
                    else:
                        scores.append(label_probability(mean_probabilities, labels[start : start + self.batch_size]))
        finally:
            for module, was_training in modes.items():
                module.training = was_training
        return torch.cat(scores).cpu() if scores else torch.zeros(0)
