"""A generator written outside the package: each class's mean image plus Gaussian noise.

It learns one image per class (the mean of that class's training images, by gradient descent on the squared error)
and samples ``mean[label] + noise_scale * noise``, the noise drawn from the sample's (seed, index). Crude, but it
runs the whole loop: it trains, it samples deterministically by (seed, index), and the gates score its output.

Use it with ``PYTHONPATH=examples/plugins python cli.py fit --config examples/plugins/coloured_squares.yaml``
(see docs/extending.md).
"""

from __future__ import annotations

import torch

from common.errors import ConfigError
from common.seeds import per_sample_noise
from lightning_modules.generator import GeneratorModule, to_uint8
from lightning_modules.trainer_needs import TrainerNeeds


class ClassMeanGenerator(GeneratorModule):
    """Args:
    num_classes: the dataset's classes.
    image_shape: (C, H, W) of the images it generates and stores.
    noise_scale: standard deviation of the noise added to a class's mean, in [-1, 1] pixel units.
    lr: Adam learning rate of the class means.
    """

    trainer_needs = TrainerNeeds(shown_metrics=("train/mean_loss",))

    def __init__(self, num_classes: int = 2, image_shape: tuple[int, int, int] = (3, 16, 16),
                 noise_scale: float = 0.1, lr: float = 0.1) -> None:
        if not noise_scale >= 0:
            raise ConfigError(f"model.init_args.noise_scale must be >= 0, got {noise_scale!r}")
        if not lr > 0:
            raise ConfigError(f"model.init_args.lr must be > 0, got {lr!r}")
        super().__init__(num_classes, tuple(image_shape))
        self.save_hyperparameters()
        self.means = torch.nn.Parameter(torch.rand(self.num_classes, *self.image_shape) * 0.2 - 1)

    def configure_optimizers(self):
        return torch.optim.Adam([self.means], lr=self.hparams.lr)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch["image"].float() / 127.5 - 1, batch["label"].long()
        loss = ((self.means[labels] - images) ** 2).mean()
        self.log("train/mean_loss", loss.detach(), prog_bar=True, batch_size=len(labels))
        return loss

    @torch.no_grad()
    def generate(self, labels: torch.Tensor, indices: torch.Tensor, seeds: torch.Tensor | int) -> torch.Tensor:
        noise = per_sample_noise(indices, self.image_shape, seeds, device=self.device)
        return to_uint8(self.means[labels.to(self.device).long()] + self.hparams.noise_scale * noise)
