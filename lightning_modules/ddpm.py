"""Class-conditional DDPM as a loop generator, sampled with deterministic DDIM and classifier-free guidance.

Training is the standard epsilon-prediction objective of Ho et al. (2020): a random timestep and Gaussian noise per
image, MSE between the true and the predicted noise (computed in float32 under any mixed precision). With
probability ``cond_drop_prob`` a label is replaced by the null class ``num_classes``, so the same network also
learns the unconditional model that classifier-free guidance (Ho & Salimans 2022) extrapolates away from.

Sampling runs DDIM (Song et al. 2021) with eta = 0 from the training schedule: no noise is drawn after the initial
``per_sample_noise``, so a sample is a pure function of (seed, index, label, weights), however the indices
are batched or split across ranks.

DDP: every parameter takes part in every training step (the class embedding is one tensor, whichever of its rows
a batch selects), so plain ``strategy="ddp"`` works and ``find_unused_parameters`` is not needed (its
``trainer_needs`` leave it off).
Noise, timesteps, label dropout and the UNet's dropout masks all come from the global RNG, which ``EpochSeeder``
seeds per (stage seed, epoch, step, rank): they differ between DDP ranks, like every other module's in the project.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F

from common.errors import ConfigError
from common.seeds import per_sample_noise
from lightning_modules.generator import GeneratorModule, to_uint8
from lightning_modules.networks.ddpm_unet import build_unet, max_levels
from lightning_modules.trainer_needs import TrainerNeeds

if TYPE_CHECKING:  # diffusers is imported when the generator is built, not for `cli.py fit --help`
    from diffusers import DDIMScheduler

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _validate(
    num_classes,
    image_shape,
    block_out_channels,
    layers_per_block,
    attention,
    norm_num_groups,
    dropout,
    num_train_timesteps,
    beta_schedule,
    lr,
    weight_decay,
    cond_drop_prob,
    num_inference_steps,
    guidance_scale,
) -> None:
    """Raise one ConfigError naming the first bad field and how to fix it, before any network is built."""
    field = "model.init_args"
    for name, value in (
        ("num_classes", num_classes),
        ("layers_per_block", layers_per_block),
        ("norm_num_groups", norm_num_groups),
        ("num_train_timesteps", num_train_timesteps),
        ("num_inference_steps", num_inference_steps),
    ):
        if not _is_int(value) or value <= 0:
            raise ConfigError(f"{field}.{name} must be a positive integer, got {value!r}: set a value >= 1")
    if len(image_shape) != 3 or not all(_is_int(s) and s > 0 for s in image_shape):
        raise ConfigError(
            f"{field}.image_shape must be three positive integers [channels, height, width], got {list(image_shape)}"
        )
    if not block_out_channels or not all(_is_int(c) and c > 0 for c in block_out_channels):
        raise ConfigError(
            f"{field}.block_out_channels must be a non-empty list of positive integers (channels per UNet level), "
            f"got {list(block_out_channels)}: e.g. [64, 128, 256] for 28x28 or [128, 256, 256, 256] for 32x32"
        )
    bad = [c for c in block_out_channels if c % norm_num_groups]
    if bad:
        raise ConfigError(
            f"{field}.block_out_channels {list(block_out_channels)} has entries {bad} not divisible by "
            f"{field}.norm_num_groups={norm_num_groups} (GroupNorm): make every entry a multiple of it, or set "
            "norm_num_groups to a common divisor (32 for the usual widths, 8 for tiny nets)"
        )
    _, height, width = image_shape
    levels = len(block_out_channels)
    allowed = min(max_levels(height), max_levels(width))
    if levels > allowed:
        raise ConfigError(
            f"{field}.block_out_channels has {levels} levels but the image {height}x{width} allows at most {allowed}: "
            f"every level but the last halves the resolution, so each side must be divisible by 2**(levels - 1) = "
            f"{2 ** (levels - 1)}; give block_out_channels at most {allowed} entries (28x28: up to 3, e.g. "
            "[64, 128, 256]; 32x32: up to 6) or resize the dataset"
        )
    if not isinstance(attention, bool):
        raise ConfigError(f"{field}.attention must be true or false, got {attention!r}")
    if not _is_number(dropout) or not 0 <= dropout < 1:
        raise ConfigError(f"{field}.dropout must be in [0, 1), got {dropout!r}: DDPM used 0.1 on CIFAR-10")
    if beta_schedule not in BETA_SCHEDULES:
        raise ConfigError(f"{field}.beta_schedule {beta_schedule!r} is unknown: choose one of {list(BETA_SCHEDULES)}")
    if num_train_timesteps < 2:
        raise ConfigError(f"{field}.num_train_timesteps must be at least 2, got {num_train_timesteps}: DDPM uses 1000")
    if num_inference_steps > num_train_timesteps:
        raise ConfigError(
            f"{field}.num_inference_steps={num_inference_steps} exceeds num_train_timesteps={num_train_timesteps}: "
            "DDIM samples a subset of the training timesteps, so set num_inference_steps <= num_train_timesteps"
        )
    if not _is_number(lr) or not lr > 0:
        raise ConfigError(f"{field}.lr must be positive, got {lr!r}: DDPM used 2e-4 (1e-4 for larger nets)")
    if not _is_number(weight_decay) or weight_decay < 0:
        raise ConfigError(f"{field}.weight_decay must be >= 0, got {weight_decay!r}: use 0 (DDPM) or a small value")
    if not _is_number(cond_drop_prob) or not 0 <= cond_drop_prob <= 1:
        raise ConfigError(f"{field}.cond_drop_prob must be in [0, 1], got {cond_drop_prob!r}: 0.1 is the usual value")
    if not _is_number(guidance_scale) or guidance_scale < 0:
        raise ConfigError(
            f"{field}.guidance_scale must be >= 0, got {guidance_scale!r}: 1 is plain conditional sampling, "
            "above 1 strengthens the class (e.g. 2)"
        )
    if guidance_scale != 1 and cond_drop_prob == 0:
        raise ConfigError(
            f"{field}.guidance_scale={guidance_scale} needs the unconditional model, which is only learned through "
            f"label dropout: set {field}.cond_drop_prob > 0 (e.g. 0.1) or guidance_scale to 1"
        )


class ConditionalDDPM(GeneratorModule):
    """A class-conditional pixel-space diffusion model, re-initialised every generation like the DCGAN.

    Args:
        num_classes, image_shape: the dataset's labels and (C, H, W); the class embedding has one extra, null row.
        block_out_channels: channels per UNet level; each level but the last halves the resolution, so the image
            sides must be divisible by ``2 ** (len - 1)`` (28x28: at most 3 levels; no padding is done).
        layers_per_block: residual blocks per level (DDPM: 2).
        attention: self-attention at the second level and in the middle block (DDPM: at 16x16 for 32x32 images).
        norm_num_groups: GroupNorm groups; must divide every ``block_out_channels`` entry.
        dropout: dropout in the residual blocks (DDPM: 0.1 on CIFAR-10).
        num_train_timesteps, beta_schedule: the ``DDPMScheduler``; "linear" is DDPM's 1e-4..0.02, meant for
            1000 timesteps (with far fewer the last step is not pure noise); "squaredcos_cap_v2" is the cosine
            schedule of Nichol & Dhariwal (2021), which reaches pure noise for any number of timesteps.
        lr, weight_decay: AdamW.
        cond_drop_prob: probability that a training label is replaced by the null class.
        num_inference_steps: DDIM steps ("trailing" spacing, so the first step is the noisiest training timestep).
        guidance_scale: classifier-free guidance weight w in ``eps_u + w (eps_c - eps_u)``; 1 skips the
            unconditional pass, 0 samples unconditionally.
    """

    trainer_needs = TrainerNeeds(shown_metrics=("train/loss",))

    def __init__(
        self,
        num_classes: int = 10,
        image_shape: tuple[int, int, int] = (3, 28, 28),
        block_out_channels: tuple[int, ...] = (64, 128, 256),
        layers_per_block: int = 2,
        attention: bool = True,
        norm_num_groups: int = 32,
        dropout: float = 0.1,
        num_train_timesteps: int = 1000,
        beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "linear",
        lr: float = 2e-4,
        weight_decay: float = 0.0,
        cond_drop_prob: float = 0.1,
        num_inference_steps: int = 50,
        guidance_scale: float = 2.0,
    ) -> None:
        image_shape = tuple(image_shape)
        block_out_channels = tuple(block_out_channels)
        _validate(
            num_classes,
            image_shape,
            block_out_channels,
            layers_per_block,
            attention,
            norm_num_groups,
            dropout,
            num_train_timesteps,
            beta_schedule,
            lr,
            weight_decay,
            cond_drop_prob,
            num_inference_steps,
            guidance_scale,
        )
        super().__init__(num_classes, image_shape)
        self.save_hyperparameters()
        self.null_class = self.num_classes
        self.cond_drop_prob = float(cond_drop_prob)
        self.num_inference_steps = int(num_inference_steps)
        self.guidance_scale = float(guidance_scale)
        self.unet = build_unet(
            self.image_shape,
            self.num_classes,
            block_out_channels,
            layers_per_block,
            attention,
            norm_num_groups,
            dropout,
        )
        from diffusers import DDPMScheduler

        # the schedule is fixed by the hyper-parameters, so it is rebuilt, never checkpointed
        self.noise_scheduler = DDPMScheduler(num_train_timesteps=int(num_train_timesteps), beta_schedule=beta_schedule)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.unet.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def training_randomness(
        self, clean: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(noise, timesteps, labels after dropout) for a batch of [-1, 1] images.

        Drawn from a generator seeded by one draw of the global RNG: a pure function of the global RNG state, which
        ``EpochSeeder`` resets every step from (stage seed, epoch, step, rank), so resumes stay exact and every DDP
        rank draws its own noise and timesteps (rank 0 those of a one-process run).
        """
        seed = int(torch.randint(0, 2**62, (1,)).item())
        generator = torch.Generator(device=clean.device).manual_seed(seed)
        noise = torch.randn(clean.shape, generator=generator, device=clean.device)
        timesteps = torch.randint(
            0,
            self.noise_scheduler.config.num_train_timesteps,
            (clean.shape[0],),
            generator=generator,
            device=clean.device,
        )
        dropped = torch.rand(labels.shape, generator=generator, device=labels.device) < self.cond_drop_prob
        return noise, timesteps, torch.where(dropped, torch.full_like(labels, self.null_class), labels)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch["image"], batch["label"].long()  # subgroups are not used by the generator
        clean = images.float() / 127.5 - 1
        noise, timesteps, class_labels = self.training_randomness(clean, labels)
        noisy = self.noise_scheduler.add_noise(clean, noise, timesteps)
        predicted = self.unet(noisy, timesteps, class_labels=class_labels).sample
        # the loss in float32 whatever the autocast dtype: a bf16 MSE of near-converged noise predictions is too coarse
        with torch.autocast(device_type=clean.device.type, enabled=False):
            loss = F.mse_loss(predicted.float(), noise)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=clean.shape[0])
        return loss

    def inference_scheduler(self) -> DDIMScheduler:
        """A new DDIM scheduler on the training schedule (new per call: ``set_timesteps`` mutates it)."""
        from diffusers import DDIMScheduler

        scheduler = DDIMScheduler.from_config(self.noise_scheduler.config, timestep_spacing="trailing")
        scheduler.set_timesteps(self.num_inference_steps, device=self.device)
        return scheduler

    def predict_noise(self, sample: torch.Tensor, timestep: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The guided noise prediction (float32): one batched conditional + unconditional pass, or one pass at w = 1."""
        if self.guidance_scale == 1.0:
            return self.unet(sample, timestep, class_labels=labels).sample.float()
        both_labels = torch.cat([labels, torch.full_like(labels, self.null_class)])
        both = self.unet(torch.cat([sample, sample]), timestep, class_labels=both_labels).sample.float()
        conditional, unconditional = both.chunk(2)
        return unconditional + self.guidance_scale * (conditional - unconditional)

    @torch.no_grad()
    def generate(self, labels: torch.Tensor, indices: torch.Tensor, seeds: torch.Tensor | int) -> torch.Tensor:
        """uint8 images; deterministic DDIM from ``per_sample_noise`` with the net in eval mode (no dropout), so a
        sample depends only on (seed, index, label, weights), even when called during training."""
        labels = labels.to(self.device).long()
        if labels.numel() and not (0 <= int(labels.min()) and int(labels.max()) < self.num_classes):
            raise ValueError(f"labels must be in [0, {self.num_classes}), got {labels.tolist()}")
        scheduler = self.inference_scheduler()
        sample = per_sample_noise(indices, self.image_shape, seeds, device=self.device)
        sample = sample * scheduler.init_noise_sigma
        was_training = self.unet.training
        self.unet.eval()
        try:
            for timestep in scheduler.timesteps:
                noise = self.predict_noise(sample, timestep, labels)
                sample = scheduler.step(noise, timestep, sample, eta=0.0).prev_sample.float()
        finally:
            self.unet.train(was_training)
        return to_uint8(sample)
