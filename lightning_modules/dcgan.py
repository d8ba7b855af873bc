"""Class-conditional DCGAN as a loop generator: adversarial training with manual optimisation.

Two optimisers step in one ``training_step`` (discriminator, then generator), so Lightning's automatic
optimisation does not fit, and under DDP the GAN stage needs ``find_unused_parameters`` (both declared in
``trainer_needs``); ``bf16-mixed`` is preferred over ``16-mixed`` (no loss scaler to juggle across two optimisers).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from common.errors import ConfigError
from common.seeds import per_sample_noise
from lightning_modules.generator import GeneratorModule, to_uint8
from lightning_modules.networks.dcgan import DCGANDiscriminator, DCGANGenerator, doubling_plan
from lightning_modules.trainer_needs import TrainerNeeds


def _validate(
    num_classes: int,
    image_shape: tuple[int, int, int],
    latent_dim: int,
    base_channels: int,
    lr: float,
    betas: tuple[float, float],
    label_smoothing: float,
) -> None:
    """Raise one ConfigError naming the first bad field, before any network is built."""
    field = "model.init_args"
    for name, value in (("num_classes", num_classes), ("latent_dim", latent_dim), ("base_channels", base_channels)):
        if int(value) != value or value <= 0:
            raise ConfigError(f"{field}.{name} must be a positive integer, got {value!r}: set a value >= 1")
    if len(image_shape) != 3 or any(int(s) != s or s <= 0 for s in image_shape):
        raise ConfigError(
            f"{field}.image_shape must be three positive integers [channels, height, width], got {list(image_shape)}"
        )
    _, height, width = image_shape
    if height != width:
        raise ConfigError(
            f"{field}.image_shape {list(image_shape)} is not square: the DCGAN needs height == width "
            "(resize the dataset, e.g. to 28 or 32)"
        )
    try:
        doubling_plan(height)
    except ValueError as error:
        raise ConfigError(f"{field}.image_shape {list(image_shape)}: {error}") from None
    if not lr > 0:
        raise ConfigError(f"{field}.lr must be positive, got {lr!r}: the DCGAN default is 2e-4")
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ConfigError(
            f"{field}.betas must be two numbers in [0, 1), got {list(betas)}: the DCGAN uses [0.5, 0.999]"
        )
    if not 0 <= label_smoothing < 0.5:
        raise ConfigError(
            f"{field}.label_smoothing must be in [0, 0.5), got {label_smoothing!r}: "
            "use 0 for none or ~0.1 for one-sided smoothing"
        )


class ConditionalDCGAN(GeneratorModule):
    """DCGAN generator and discriminator conditioned on the class label, trained with the non-saturating loss.

    ``label_smoothing`` is one-sided (real targets become ``1 - label_smoothing``, Salimans et al. 2016).
    ``class_std_feature`` (default on) lets the discriminator see each class's within-batch spread, a guard against
    per-class mode collapse that plain DCGAN lacks; ``false``: the plain DCGAN (``configs/variants/plain_dcgan.yaml``).
    """

    trainer_needs = TrainerNeeds(manual_optimization=True, find_unused_parameters=True,
                                 shown_metrics=("train/d_loss", "train/g_loss"))

    def __init__(
        self,
        num_classes: int = 10,
        image_shape: tuple[int, int, int] = (3, 28, 28),
        latent_dim: int = 100,
        base_channels: int = 64,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        label_smoothing: float = 0.0,
        class_std_feature: bool = True,
    ) -> None:
        image_shape = tuple(image_shape)
        betas = tuple(betas)
        _validate(num_classes, image_shape, latent_dim, base_channels, lr, betas, label_smoothing)
        super().__init__(num_classes, image_shape)
        self.save_hyperparameters()
        self.latent_dim = int(latent_dim)
        self.generator = DCGANGenerator(self.latent_dim, self.num_classes, self.image_shape, int(base_channels))
        self.discriminator = DCGANDiscriminator(self.num_classes, self.image_shape, int(base_channels),
                                                class_std=bool(class_std_feature))

    def configure_optimizers(self):
        lr, betas = self.hparams.lr, tuple(self.hparams.betas)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas)
        return [opt_g, opt_d]

    @staticmethod
    def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
        """BCE-with-logits in float32 whatever the autocast dtype of the logits (bf16 losses are too coarse)."""
        logits = logits.float()
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))

    def training_step(self, batch, batch_idx: int) -> None:
        images, labels = batch["image"], batch["label"].long()
        real = images.float() / 127.5 - 1
        opt_g, opt_d = self.optimizers()
        # from the global RNG, which EpochSeeder seeds per (stage seed, epoch, step, rank): each DDP rank its own z
        noise = torch.randn(real.shape[0], self.latent_dim, device=real.device)
        # fakes for the batch's own labels, so the generated class distribution follows the data's
        fake = self.generator(noise, labels)

        self.toggle_optimizer(opt_d)
        d_loss = self._bce(self.discriminator(real, labels), 1.0 - self.hparams.label_smoothing) + self._bce(
            self.discriminator(fake.detach(), labels), 0.0
        )
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        # non-saturating generator loss: maximise log D(G(z)); the graph to G was built before any toggle
        self.toggle_optimizer(opt_g)
        g_loss = self._bce(self.discriminator(fake, labels), 1.0)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        self.log("train/d_loss", d_loss.detach(), prog_bar=True, batch_size=real.shape[0])
        self.log("train/g_loss", g_loss.detach(), prog_bar=True, batch_size=real.shape[0])

    @torch.no_grad()
    def generate(self, labels: torch.Tensor, indices: torch.Tensor, seeds: torch.Tensor | int) -> torch.Tensor:
        """uint8 images; the generator runs in eval mode (BatchNorm running stats) so a sample depends only on
        ``(seed, index, label)``, never on the rest of its batch, even when called during training."""
        noise = per_sample_noise(indices, (self.latent_dim,), seeds, device=self.device)
        was_training = self.generator.training
        self.generator.eval()
        try:
            images = self.generator(noise, labels.to(self.device).long())
        finally:
            self.generator.train(was_training)
        return to_uint8(images)
