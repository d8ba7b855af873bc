"""Base class of every generator in the loop (conditional DCGAN, DDPM, Stable Diffusion + LoRA).

The loop only relies on this contract (``tests/contracts/`` checks it for every registered generator):

* ``fresh()`` returns a new, untrained instance with the same hyper-parameters (the paper re-initialises
  the generator every generation): the hyper-parameters ``save_hyperparameters()`` recorded in ``__init__``, which
  ``fresh()`` refuses to guess without; build heavy, frozen parts lazily in ``configure_model`` so this is cheap;
* ``trainer_needs`` declares what its training stage needs from the Trainer (``TrainerNeeds``: manual optimisation,
  DDP's ``find_unused_parameters``, unsupported precisions, the losses its progress lines show);
* ``training_resolution`` is the square side it trains at (None: the classifiers' view) and ``image_shape`` the
  (C, H, W) of the uint8 images it generates: what the stack stores;
* ``training_step`` consumes the generation's mixed dataset: named batches (``common.samples.Batch``: ``image`` uint8
  (B, C, H, W), ``label``, ``subgroup``) in the generator's view (``image`` holds the cached latent moments instead
  when ``cache_latents`` is set);
* ``predict_step`` consumes ``(indices, labels, seeds)`` batches and returns ``{"index", "label", "image"}``. The
  noise of a sample depends only on its ``(seed, index)`` (``common.seeds.per_sample_noise``), so the generated
  block is the same however the indices are split across ranks (up to float32 rounding, where a CPU runs another
  kernel for another batch size).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import ClassVar

import lightning as L
import torch

from common.errors import ConfigError
from lightning_modules.trainer_needs import TrainerNeeds


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Map images in [-1, 1] to uint8 [0, 255]."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


class GeneratorModule(L.LightningModule, ABC):
    """A class-conditional image generator that the loop trains, then samples from."""

    #: what its training stage needs from the Trainer (see ``TrainerNeeds``)
    trainer_needs: ClassVar[TrainerNeeds] = TrainerNeeds()
    #: the loop encodes its training images' latents once per run (``datamodules.latent_cache``); a generator that
    #: sets it provides ``latent_moments`` and ``latent_identity`` (Stable Diffusion + LoRA)
    cache_latents: bool = False

    def __init__(self, num_classes: int, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.automatic_optimization = not self.trainer_needs.manual_optimization

    def fresh(self) -> GeneratorModule:
        """A new instance with the same hyper-parameters and new weights (drawn from the current RNG)."""
        hparams = {k: v for k, v in self.hparams.items() if not k.startswith("_")}  # LightningCLI adds _class_path
        required = [name for name, p in inspect.signature(type(self).__init__).parameters.items()
                    if name != "self" and p.default is inspect.Parameter.empty
                    and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        missing = [name for name in required if name not in hparams]
        if missing:
            raise TypeError(f"{type(self).__name__}.fresh() cannot rebuild it: its hyper-parameters lack {missing}; "
                            "call self.save_hyperparameters() in __init__")
        return type(self)(**hparams)

    @property
    def training_resolution(self) -> int | None:
        """The square side this generator trains at (real images: shorter side resized to it, centre crop); None:
        it trains on the images as the classifiers see them (the DCGAN)."""
        return None

    @property
    def cached_latent_bytes(self) -> int:
        """Bytes its latent cache holds per image (for the disk plan): 0 without ``cache_latents``."""
        return 0

    def validate(self) -> None:
        """ConfigError, before any work, for what the generator needs and does not find (e.g. local weights)."""
        return None

    def check_compatible(self, num_classes: int) -> None:
        """Raise ConfigError when this generator cannot produce the dataset's classes (the data source checks the
        image shape it stores: ``RealDataSource.check_stack_shape``)."""
        if num_classes != self.num_classes:
            raise ConfigError(
                f"generator num_classes={self.num_classes} but the dataset has {num_classes} classes: "
                f"set model.init_args.num_classes to {num_classes}"
            )

    def check_precision(self, precision: str) -> None:
        """ConfigError when the trainer's precision is one this generator declares it cannot train under."""
        if str(precision) in self.trainer_needs.unsupported_precisions:
            raise ConfigError(f"{type(self).__name__} cannot train with trainer.precision={precision}: choose another "
                              f"(it refuses {list(self.trainer_needs.unsupported_precisions)})")

    @abstractmethod
    def generate(self, labels: torch.Tensor, indices: torch.Tensor, seeds: torch.Tensor | int) -> torch.Tensor:
        """uint8 images (B, C, H, W) for ``labels``; sample i's noise from ``per_sample_noise`` of
        ``(seeds[i], indices[i])`` (one int: the same seed for every sample)."""

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        indices, labels, seeds = batch
        images = self.generate(labels, indices, seeds)
        return {"index": indices.cpu(), "label": labels.cpu(), "image": images.cpu()}
