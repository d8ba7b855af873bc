"""Generators whose output distribution is known exactly given what they trained on: the loop's theory checks.

* ``ResamplingGenerator``: draws every sample uniformly, with replacement, from the training images of its class
  (one epoch of D_{n-1}, recorded as it is seen): a perfect generator, so the subgroup share of its block is a
  binomial draw around the share of its training data (Wright-Fisher sampling).
* ``GaussianFitGenerator``: fits a normal distribution per (class, pixel) by maximum likelihood (mean and variance
  with divisor n) on one epoch of D_{n-1}, and samples from it (rounded to uint8); with ``known_variance`` it fits
  only the mean and samples with that variance (the known-variance mean estimation of He, Xu and Cheng 2025).

Both read their training set in the first epoch only (an epoch is the whole D_{n-1}: every real sample once plus
the stack draw) and sample by (seed, index) like every generator (with a vectorised counter-based stream instead
of ``common.seeds.per_sample_noise``'s generator per sample), so a block does not depend on batching or ranks.
They learn by counting, not by gradient descent: their training stage steps no optimizer.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable

import numpy as np
import torch

from common.errors import ConfigError
from lightning_modules.generator import GeneratorModule
from lightning_modules.trainer_needs import TrainerNeeds


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (Steele, Lea and Flood 2014): a bijective scramble of 64-bit integers."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def sample_keys(seeds: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``common.seeds.index_seed(seed, index)`` of every sample, vectorised (uint64)."""
    with np.errstate(over="ignore"):
        return (seeds * np.uint64(1_000_003) + indices) % np.uint64(2**63 - 1)


def per_sample_uniforms(indices: torch.Tensor, seeds: torch.Tensor | int, count: int) -> torch.Tensor:
    """(N, count) float64 uniform numbers in (0, 1), a pure function of each sample's (seed, index) (its key is
    ``common.seeds.index_seed``): counter-based and vectorised, so a block of 10^5 samples costs milliseconds."""
    index_array = torch.as_tensor(indices).cpu().flatten().numpy().astype(np.uint64)
    seed_array = np.broadcast_to(torch.as_tensor(seeds).cpu().flatten().numpy().astype(np.uint64),
                                 index_array.shape)
    keys = sample_keys(seed_array, index_array)
    streams = _splitmix64(np.arange(1, count + 1, dtype=np.uint64))
    bits = _splitmix64(_splitmix64(keys[:, None]) ^ streams[None, :]) >> np.uint64(11)  # 53 random bits
    return torch.from_numpy((bits.astype(np.float64) + 0.5) / 2.0**53)


def per_sample_uniform(indices: torch.Tensor, seeds: torch.Tensor | int) -> torch.Tensor:
    """(N,) float64: one uniform number in (0, 1) per sample, a pure function of its (seed, index)."""
    return per_sample_uniforms(indices, seeds, 1)[:, 0]


def per_sample_normals(indices: torch.Tensor, seeds: torch.Tensor | int, shape: tuple[int, ...]) -> torch.Tensor:
    """(N, *shape) float64 standard normal numbers per sample (Box-Muller on ``per_sample_uniforms``)."""
    size = int(np.prod(shape))
    uniforms = per_sample_uniforms(indices, seeds, 2 * size)
    radius = torch.sqrt(-2.0 * torch.log(uniforms[:, :size]))
    return (radius * torch.cos(2.0 * math.pi * uniforms[:, size:])).reshape(-1, *shape)


class CountingGenerator(GeneratorModule):
    """A generator fitted by reading one epoch of its training set: nothing to optimise."""

    trainer_needs = TrainerNeeds(manual_optimization=True, shown_metrics=("train/samples_read",))

    def configure_optimizers(self):
        return None

    def on_train_epoch_start(self) -> None:
        if self.current_epoch == 0:
            self.start_reading()

    def training_step(self, batch, batch_idx: int) -> None:
        if self.current_epoch == 0:
            self.read(batch["image"], batch["label"].long())
            self.log("train/samples_read", float(len(batch["label"])), reduce_fx="sum", prog_bar=True,
                     batch_size=len(batch["label"]))

    def on_train_epoch_end(self) -> None:
        if self.current_epoch == 0:
            self.finish_reading(lambda total: self.trainer.strategy.reduce(total, reduce_op="sum"))

    @abstractmethod
    def start_reading(self) -> None:
        """Forget what an earlier fit read."""

    @abstractmethod
    def read(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Take in one training batch."""

    @abstractmethod
    def finish_reading(self, sum_over_ranks: Callable[[torch.Tensor], torch.Tensor] = lambda total: total) -> None:
        """Fit from what was read; ``sum_over_ranks`` adds up a statistic over DDP ranks (one process: itself)."""


class ResamplingGenerator(CountingGenerator):
    """Args:
    num_classes: the dataset's classes.
    image_shape: (C, H, W) of the images it stores and generates.
    """

    def __init__(self, num_classes: int = 2, image_shape: tuple[int, int, int] = (1, 2, 2)) -> None:
        super().__init__(num_classes, tuple(image_shape))
        self.save_hyperparameters()
        self.register_buffer("pool_images", torch.zeros((0, *self.image_shape), dtype=torch.uint8))
        self.register_buffer("pool_labels", torch.zeros(0, dtype=torch.long))
        self._seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def start_reading(self) -> None:
        self._seen = []

    def read(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self._seen.append((images.detach().to(torch.uint8).cpu(), labels.detach().cpu()))

    def finish_reading(self, sum_over_ranks: Callable[[torch.Tensor], torch.Tensor] = lambda total: total) -> None:
        """The pool is what this process read: a one-process fit (under DDP each rank would resample its own share
        of D_{n-1}; the checks run on one CPU)."""
        images = torch.cat([s[0] for s in self._seen]) if self._seen else self.pool_images
        labels = torch.cat([s[1] for s in self._seen]) if self._seen else self.pool_labels
        self.pool_images, self.pool_labels = images.to(self.device), labels.to(self.device)
        self._seen = []

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """The pool's size is the training set's: take the stored shapes before loading."""
        for name in ("pool_images", "pool_labels"):
            if name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[name], device=self.device))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @torch.no_grad()
    def generate(self, labels: torch.Tensor, indices: torch.Tensor, seeds: torch.Tensor | int) -> torch.Tensor:
        pool_labels = self.pool_labels.cpu()
        labels, uniform = labels.cpu().long(), per_sample_uniform(indices, seeds)
        order = torch.argsort(pool_labels, stable=True)  # the pool grouped by class, in pool order within a class
        counts = torch.bincount(pool_labels, minlength=self.num_classes)
        starts = torch.cumsum(counts, 0) - counts
        absent = sorted(set(labels.unique().tolist()) - set(torch.nonzero(counts).flatten().tolist()))
        if absent:
            raise RuntimeError(f"ResamplingGenerator: classes {absent[:10]} are absent from its training data, so it "
                               "has nothing to resample for them: keep every class in the stack (a filter dropped "
                               "them all?)")
        picks = (uniform * counts[labels]).floor().long()
        picks = torch.minimum(picks, counts[labels] - 1)
        return self.pool_images.cpu()[order[starts[labels] + picks]].to(self.device)


class GaussianFitGenerator(CountingGenerator):
    """Args:
    num_classes: the dataset's classes.
    image_shape: (C, H, W) of the images it stores and generates.
    known_variance: None: fit each (class, pixel) variance by maximum likelihood; a number: fit the means only and
        sample with this variance (uint8 units squared).
    """

    def __init__(self, num_classes: int = 2, image_shape: tuple[int, int, int] = (1, 2, 2),
                 known_variance: float | None = None) -> None:
        if known_variance is not None and not known_variance > 0:
            raise ConfigError(f"model.init_args.known_variance must be > 0 or null, got {known_variance!r}")
        super().__init__(num_classes, tuple(image_shape))
        self.save_hyperparameters()
        shape = (self.num_classes, *self.image_shape)
        self.register_buffer("means", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("variances", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("counts", torch.zeros(self.num_classes, dtype=torch.float64))
        self._sums = self._squares = None

    def start_reading(self) -> None:
        self.counts.zero_()
        self._sums = torch.zeros_like(self.means)
        self._squares = torch.zeros_like(self.means)

    def read(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        values = images.double()
        self.counts.index_add_(0, labels, torch.ones(len(labels), dtype=torch.float64, device=self.counts.device))
        self._sums.index_add_(0, labels, values)
        self._squares.index_add_(0, labels, values * values)

    def finish_reading(self, sum_over_ranks: Callable[[torch.Tensor], torch.Tensor] = lambda total: total) -> None:
        counts = sum_over_ranks(self.counts)
        sums, squares = sum_over_ranks(self._sums), sum_over_ranks(self._squares)
        if bool((counts == 0).any()):
            missing = torch.nonzero(counts == 0).flatten().tolist()
            raise RuntimeError(f"GaussianFitGenerator: classes {missing[:10]} are absent from its training data")
        shape = (-1,) + (1,) * len(self.image_shape)
        means = sums / counts.view(shape)
        self.counts.copy_(counts)
        self.means.copy_(means)
        self.variances.copy_((squares / counts.view(shape) - means * means).clamp(min=0.0))

    @torch.no_grad()
    def generate(self, labels: torch.Tensor, indices: torch.Tensor, seeds: torch.Tensor | int) -> torch.Tensor:
        labels = labels.to(self.means.device).long()
        noise = per_sample_normals(indices, seeds, self.image_shape).to(self.means.device)
        known = self.hparams.get("known_variance")
        scale = self.variances[labels].sqrt() if known is None else math.sqrt(known)
        return (self.means[labels] + scale * noise).round().clamp(0, 255).to(torch.uint8)
