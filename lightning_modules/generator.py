"""Base class of every generator in the loop (conditional DCGAN, Stable Diffusion + LoRA).

The loop only relies on this contract:

* ``fresh()`` returns a new, untrained instance with the same hyper-parameters (the paper re-initialises
  the generator every generation); build heavy, frozen parts lazily in ``configure_model`` so this is cheap;
* ``training_step`` consumes the generation's mixed dataset: batches ``(images uint8 (B, C, H, W), labels, groups)``
  in the generator's view (``training_resolution``: the classifiers' view when None);
* ``predict_step`` consumes ``(indices, labels)`` batches and returns ``{"index", "label", "image"}`` with
  uint8 images of ``image_shape``: what the stack stores. The noise of a sample depends only on
  ``(sample_seed, index)`` so that the generated block is identical however the indices are split across ranks.
"""

from __future__ import annotations

from abc import abstractmethod

import lightning as L
import torch

from common.errors import ConfigError


def per_sample_noise(indices: torch.Tensor, shape: tuple[int, ...], seed: int, device: torch.device | str = "cpu"):
    """Standard-normal noise of ``shape`` for every index, a pure function of (seed, index)."""
    out = torch.empty((len(indices), *shape))
    for row, index in enumerate(indices.tolist()):
        g = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(index)) % (2**63 - 1))
        out[row] = torch.randn(shape, generator=g)
    return out.to(device)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Map images in [-1, 1] to uint8 [0, 255]."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


class GeneratorModule(L.LightningModule):
    """A class-conditional image generator that the loop trains, then samples from."""

    def __init__(self, num_classes: int, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.image_shape = tuple(int(s) for s in image_shape)
        #: set by the loop before ``trainer.predict``; the noise of sample i is a function of (sample_seed, i)
        self.sample_seed = 0

    def fresh(self) -> GeneratorModule:
        """A new instance with the same hyper-parameters and new weights (drawn from the current RNG)."""
        hparams = {k: v for k, v in self.hparams.items() if not k.startswith("_")}  # LightningCLI adds _class_path
        return type(self)(**hparams)

    @property
    def training_resolution(self) -> int | None:
        """The square side this generator trains at (real images: shorter side resized to it, centre crop); None:
        it trains on the images as the classifiers see them (the DCGAN)."""
        return None

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

    @abstractmethod
    def generate(self, labels: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """uint8 images (B, C, H, W) for ``labels``; noise from ``per_sample_noise(indices, ..., self.sample_seed)``."""

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        indices, labels = batch
        images = self.generate(labels, indices)
        return {"index": indices.cpu(), "label": labels.cpu(), "image": images.cpu()}
