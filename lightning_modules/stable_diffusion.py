"""Stable Diffusion 1.5 fine-tuned with a fresh LoRA adapter every generation (the paper's Hard ImageNet generator).

Only the LoRA adapter on the UNet is trained; VAE, text encoder and UNet stay frozen and are cast to the training
precision, which keeps fine-tuning affordable and makes "re-initialise the generator" mean "a new adapter".
Checkpoints therefore hold only the LoRA weights (megabytes, not gigabytes); the base weights are re-read from the
local diffusers folder named in the config. Nothing here touches the network (``local_files_only=True``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from common.errors import ConfigError
from common.image_views import ImageView
from common.seeds import sample_generators
from lightning_modules.generator import GeneratorModule, to_uint8
from lightning_modules.sd_folder import check_pretrained_path, load_frozen_parts
from lightning_modules.trainer_needs import TrainerNeeds

if TYPE_CHECKING:  # diffusers, peft and transformers are imported when the model is configured, not for `fit --help`
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from transformers import CLIPTextModel, CLIPTokenizer

#: inference schedulers selectable by name -> their diffusers class; each is built ``from_config`` of the pretrained
#: folder's scheduler
SCHEDULERS: dict[str, str] = {
    "DDIM": "DDIMScheduler",
    "DDPM": "DDPMScheduler",
    "PNDM": "PNDMScheduler",
    "EulerDiscrete": "EulerDiscreteScheduler",
    "DPMSolverMultistep": "DPMSolverMultistepScheduler",
}
DEFAULT_LORA_TARGET_MODULES = ("to_k", "to_q", "to_v", "to_out.0")
WEIGHT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: prefix of the LoRA keys in Lightning checkpoints and LoRA files (the diffusers LoRA file convention)
UNET_KEY_PREFIX = "unet."


class StableDiffusionLoRA(GeneratorModule):
    """Class-conditional generation with SD 1.5 prompted by ``prompt_template``; LoRA fine-tuned per generation.

    Args:
        pretrained_path: local diffusers folder of Stable Diffusion 1.5 (see ``check_pretrained_path``).
        class_names: one name per label; underscores become spaces in prompts ("dog_sled" -> "dog sled").
        stack_resolution: side of the square RGB images handed to the loop and stored in the stack (default: the
            ``generation_resolution``, i.e. stored as generated); every consumer resizes them to its own view.
        num_classes: defaults to ``len(class_names)``.
        prompt_template: caption of a training image and prompt of a generated one; must contain ``{class_name}``.
        lora_rank, lora_alpha, lora_target_modules: the peft ``LoraConfig`` of the UNet adapter.
        lr: AdamW learning rate of the LoRA parameters.
        train_resolution: the square side SD trains at (a multiple of 8): the loop hands it real images whose shorter
            side is resized to it and centre-cropped (no aspect distortion), and stacked images resized to it.
        num_inference_steps, guidance_scale, scheduler: sampling settings; scheduler is one of ``SCHEDULERS``.
        generation_resolution: square size SD generates at, before resizing to ``stack_resolution``.
        weight_dtype: dtype of the frozen weights; "auto" follows the trainer precision (bf16* -> bfloat16,
            16* -> float16, else float32). LoRA parameters always stay float32.
        cache_latents: in the loop, encode every training image's latent distribution once per run instead of at
            every step (``datamodules.latent_cache``); the latents drawn are the same, so results are too.
    """

    trainer_needs = TrainerNeeds(shown_metrics=("train/loss",))

    def __init__(
        self,
        pretrained_path: str,
        class_names: list[str],
        stack_resolution: int | None = None,
        num_classes: int | None = None,
        prompt_template: str = "a photo of a {class_name}",
        lora_rank: int = 8,
        lora_alpha: int = 8,
        lora_target_modules: Sequence[str] = DEFAULT_LORA_TARGET_MODULES,
        lr: float = 1e-4,
        train_resolution: int = 512,
        num_inference_steps: int = 30,
        guidance_scale: float = 7.5,
        scheduler: str = "DDIM",
        generation_resolution: int = 512,
        weight_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto",
        cache_latents: bool = True,
    ) -> None:
        num_classes = len(class_names) if num_classes is None else int(num_classes)
        self._check_arguments(
            class_names, stack_resolution, num_classes, prompt_template, lora_rank, lora_alpha, lora_target_modules,
            lr, train_resolution, num_inference_steps, scheduler, generation_resolution, weight_dtype,
        )
        side = int(generation_resolution if stack_resolution is None else stack_resolution)
        super().__init__(num_classes=num_classes, image_shape=(3, side, side))
        self.save_hyperparameters()
        self.pretrained_path = str(pretrained_path)
        self.class_names = list(class_names)
        self.prompt_template = prompt_template
        self.lora_rank = int(lora_rank)
        self.lora_alpha = int(lora_alpha)
        self.lora_target_modules = list(lora_target_modules)
        self.lr = float(lr)
        self.train_resolution = int(train_resolution)
        self.num_inference_steps = int(num_inference_steps)
        self.guidance_scale = float(guidance_scale)
        self.scheduler_name = scheduler
        self.generation_resolution = int(generation_resolution)
        self.weight_dtype_option = weight_dtype
        self.cache_latents = bool(cache_latents)
        # built in configure_model, so fresh() stays cheap and DDP ranks load on their own
        self.unet: UNet2DConditionModel | None = None
        self.vae: AutoencoderKL | None = None
        self.text_encoder: CLIPTextModel | None = None
        self.tokenizer: CLIPTokenizer | None = None
        self.noise_scheduler: DDPMScheduler | None = None
        self.inference_scheduler = None
        self._pipeline: StableDiffusionPipeline | None = None

    # ------------------------------------------------------------------ validation
    @staticmethod
    def _check_arguments(
        class_names, stack_resolution, num_classes, prompt_template, lora_rank, lora_alpha, lora_target_modules,
        lr, train_resolution, num_inference_steps, scheduler, generation_resolution, weight_dtype,
    ) -> None:
        """Every cheap check of the arguments, each failing with a ConfigError that says what to set."""
        if len(class_names) != num_classes:
            raise ConfigError(
                f"StableDiffusionLoRA got {len(class_names)} class_names but num_classes={num_classes}: "
                "give one name per class (or leave num_classes unset)"
            )
        if stack_resolution is not None and (isinstance(stack_resolution, bool) or int(stack_resolution) < 1):
            raise ConfigError(
                f"stack_resolution={stack_resolution!r} must be a positive side in pixels (the stored squares; "
                "512 keeps SD's own resolution) or null for generation_resolution"
            )
        if "{class_name}" not in prompt_template:
            raise ConfigError(
                f"prompt_template {prompt_template!r} has no '{{class_name}}' placeholder: "
                "use e.g. 'a photo of a {class_name}'"
            )
        if scheduler not in SCHEDULERS:
            raise ConfigError(f"unknown scheduler {scheduler!r}: choose one of {sorted(SCHEDULERS)}")
        if weight_dtype != "auto" and weight_dtype not in WEIGHT_DTYPES:
            raise ConfigError(f"unknown weight_dtype {weight_dtype!r}: choose 'auto' or one of {sorted(WEIGHT_DTYPES)}")
        for name, value in (("train_resolution", train_resolution), ("generation_resolution", generation_resolution)):
            if int(value) <= 0 or int(value) % 8:
                raise ConfigError(f"{name}={value} must be a positive multiple of 8 (SD 1.5 uses 512)")
        for name, value in (("lora_rank", lora_rank), ("lora_alpha", lora_alpha), ("lr", lr),
                            ("num_inference_steps", num_inference_steps)):
            if value <= 0:
                raise ConfigError(f"{name}={value} must be positive")
        if isinstance(lora_target_modules, str) or not lora_target_modules:
            raise ConfigError(
                f"lora_target_modules must be a non-empty list of module names, got {lora_target_modules!r}; "
                f"e.g. {list(DEFAULT_LORA_TARGET_MODULES)}"
            )

    @staticmethod
    def check_pretrained_path(path: str | Path) -> None:
        """Raise ConfigError naming every missing part of a local diffusers SD 1.5 folder (``sd_folder``)."""
        check_pretrained_path(path)

    def validate(self) -> None:
        """Raise ConfigError for user mistakes before any heavy work (the same checks the constructor runs)."""
        self.check_pretrained_path(self.pretrained_path)

    @property
    def training_resolution(self) -> int:
        """SD fine-tunes at ``train_resolution``: the loop hands it images of that square side."""
        return self.train_resolution

    # ------------------------------------------------------------------ model building
    def resolve_weight_dtype(self) -> torch.dtype:
        """The dtype of the frozen weights: explicit, or following the attached trainer's precision."""
        if self.weight_dtype_option != "auto":
            return WEIGHT_DTYPES[self.weight_dtype_option]
        precision = str(self._trainer.precision) if self._trainer is not None else "32-true"
        if precision.startswith("bf16"):
            return torch.bfloat16
        if precision.startswith("16"):
            return torch.float16
        return torch.float32

    def configure_model(self) -> None:
        """Load the frozen SD components from disk and add a fresh LoRA adapter (idempotent)."""
        if self.unet is not None:
            return
        import diffusers
        from diffusers.training_utils import cast_training_params

        parts = load_frozen_parts(self.pretrained_path, self.resolve_weight_dtype())
        tokenizer, text_encoder, vae, unet = parts.tokenizer, parts.text_encoder, parts.vae, parts.unet
        scheduler_config = parts.scheduler_config
        with torch.device("cpu"):
            unet.add_adapter(self.lora_config())  # lora_A drawn from the global RNG: a new adapter per instance
        cast_training_params(unet, dtype=torch.float32)  # LoRA params train in float32 whatever the frozen dtype
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.vae = vae
        self.unet = unet
        self.noise_scheduler = diffusers.DDPMScheduler.from_config(scheduler_config)
        self.inference_scheduler = getattr(diffusers, SCHEDULERS[self.scheduler_name]).from_config(scheduler_config)
        self._pipeline = None

    def lora_config(self) -> LoraConfig:
        from peft import LoraConfig

        return LoraConfig(
            r=self.lora_rank,
            lora_alpha=self.lora_alpha,
            init_lora_weights="gaussian",
            target_modules=list(self.lora_target_modules),
        )

    def lora_parameters(self) -> list[torch.nn.Parameter]:
        self.configure_model()
        return [p for p in self.unet.parameters() if p.requires_grad]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.lora_parameters(), lr=self.lr)

    # ------------------------------------------------------------------ training
    def prompts_for(self, labels: torch.Tensor) -> list[str]:
        return [
            self.prompt_template.format(class_name=self.class_names[int(label)].replace("_", " "))
            for label in labels.tolist()
        ]

    def encode_prompts(self, labels: torch.Tensor) -> torch.Tensor:
        token_ids = self.tokenizer(
            self.prompts_for(labels), padding="max_length", max_length=self.tokenizer.model_max_length,
            truncation=True, return_tensors="pt",
        ).input_ids.to(self.text_encoder.device)
        return self.text_encoder(token_ids)[0]

    def to_model_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> float in [-1, 1] at ``train_resolution``, the range the VAE was trained on.

        The loop hands over images already at ``train_resolution``; others (a plain DataLoader) get the same
        shorter-side resize and centre crop, never an aspect-distorting squash.
        """
        images = ImageView.shorter_side(self.train_resolution)(images)
        return (images.float() / 127.5 - 1.0).clamp(-1, 1)

    def latent_moments(self, images: torch.Tensor) -> torch.Tensor:
        """The VAE's latent distribution of uint8 images: float32 (B, 2C, h, w), the C mean channels then the C std
        channels (what the latent cache stores; ``sample_latents`` draws from it)."""
        self.configure_model()
        pixels = self.to_model_pixels(images.to(self.vae.device)).to(self.vae.dtype)
        with torch.no_grad():
            distribution = self.vae.encode(pixels).latent_dist
        return torch.cat([distribution.mean, distribution.std], dim=1).float()

    def sample_latents(self, inputs: torch.Tensor) -> torch.Tensor:
        """Scaled latents drawn from each input's VAE distribution: uint8 images are encoded now, float inputs are
        cached moments (``latent_moments``). Both draw ``mean + std * noise`` in the VAE's dtype with the same
        global-RNG call as diffusers' ``latent_dist.sample()``, so a cached run draws the latents an uncached one
        does."""
        from diffusers.utils.torch_utils import randn_tensor

        frozen_dtype = self.vae.dtype
        with torch.no_grad():
            if inputs.is_floating_point():
                mean, std = inputs.to(self.vae.device, frozen_dtype).chunk(2, dim=1)
            else:
                distribution = self.vae.encode(self.to_model_pixels(inputs).to(frozen_dtype)).latent_dist
                mean, std = distribution.mean, distribution.std
            noise = randn_tensor(mean.shape, device=mean.device, dtype=mean.dtype)
            return (mean + std * noise).float() * self.vae.config.scaling_factor

    @property
    def cached_latent_bytes(self) -> int:
        """Bytes the latent cache holds per image (0 with ``cache_latents: false``): float32 mean and std of the
        latent, read from the VAE's config without loading it (SD 1.5 at 512: 2 x 4 x 64 x 64 x 4 = 128 KiB)."""
        if not self.cache_latents:
            return 0
        import json

        config = json.loads((Path(self.pretrained_path) / "vae" / "config.json").read_text())
        side = self.train_resolution // 2 ** (len(config["block_out_channels"]) - 1)
        return 2 * int(config["latent_channels"]) * side * side * 4

    def latent_identity(self) -> dict[str, Any]:
        """What the latent moments depend on besides the image (the latent cache's key)."""
        vae_files = sorted((Path(self.pretrained_path) / "vae").glob("*.*"))
        return {"pretrained_path": str(Path(self.pretrained_path).resolve()), "dtype": str(self.vae.dtype),
                "train_resolution": self.train_resolution,
                "vae_files": [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in vae_files]}

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        # batch["image"]: uint8 images, or their cached latent moments (float); subgroups and masks are not used
        images_or_moments, labels = batch["image"], batch["label"]
        frozen_dtype = self.vae.dtype
        latents = self.sample_latents(images_or_moments)
        with torch.no_grad():
            prompt_embeds = self.encode_prompts(labels).to(frozen_dtype)
        # noise, timesteps (and the VAE's latent sample) come from the global RNG, which EpochSeeder seeds per
        # (stage seed, epoch, step, rank): every DDP rank draws its own, and a resumed stage the same again
        noise = torch.randn_like(latents)
        timesteps = torch.randint(
            0, self.noise_scheduler.config.num_train_timesteps, (latents.shape[0],), device=latents.device
        ).long()
        noisy_latents = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        prediction = self.unet(noisy_latents.to(frozen_dtype), timesteps, encoder_hidden_states=prompt_embeds).sample
        loss = F.mse_loss(prediction.float(), target.float())
        self.log("train/loss", loss, prog_bar=True, batch_size=latents.shape[0])
        return loss

    # ------------------------------------------------------------------ generation
    @property
    def pipeline(self) -> StableDiffusionPipeline:
        """A diffusers pipeline around this module's own components (built once; shares their weights)."""
        self.configure_model()
        if self._pipeline is None:
            from diffusers import StableDiffusionPipeline

            self._pipeline = StableDiffusionPipeline(
                vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer, unet=self.unet,
                scheduler=self.inference_scheduler, safety_checker=None, feature_extractor=None,
                requires_safety_checker=False,
            )
            self._pipeline.set_progress_bar_config(disable=True)
        return self._pipeline

    def generate(self, labels: torch.Tensor, indices: torch.Tensor, seeds: torch.Tensor | int) -> torch.Tensor:
        """uint8 images (B, *image_shape); sample i depends only on (seeds[i], indices[i]) and the weights.

        Each sample gets its own CPU generator, so the initial latents equal ``per_sample_noise`` of its index and
        are the same on every device type and however the indices are batched or split across ranks.
        """
        pipeline = self.pipeline
        generators = sample_generators(indices, seeds)
        was_training = self.unet.training
        self.unet.eval()
        try:
            images = pipeline(
                prompt=self.prompts_for(labels),
                num_inference_steps=self.num_inference_steps,
                guidance_scale=self.guidance_scale,
                height=self.generation_resolution,
                width=self.generation_resolution,
                generator=generators,
                output_type="pt",
            ).images  # float in [0, 1]
        finally:
            self.unet.train(was_training)
        images = images.float()
        size = tuple(self.image_shape[1:])
        if tuple(images.shape[-2:]) != size:
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
        return to_uint8(images * 2 - 1)

    # ------------------------------------------------------------------ LoRA-only checkpoints
    def lora_state_dict(self) -> dict[str, torch.Tensor]:
        """The adapter's weights, keyed as in diffusers LoRA files (``unet.<module>.lora_A.weight``)."""
        if self.unet is None:
            return {}
        from peft.utils import get_peft_model_state_dict

        return {UNET_KEY_PREFIX + k: v for k, v in get_peft_model_state_dict(self.unet).items()}

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        """Only the LoRA weights: the frozen base is re-read from ``pretrained_path``, so checkpoints stay small."""
        out = OrderedDict() if destination is None else destination
        for key, value in self.lora_state_dict().items():
            out[prefix + key] = value if keep_vars else value.detach()
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """Load LoRA weights (as written by ``state_dict``) into this module's adapter, building it if needed."""
        self.configure_model()
        expected = self.lora_state_dict()
        unexpected = sorted(set(state_dict) - set(expected))
        missing = sorted(set(expected) - set(state_dict))
        if strict and (unexpected or missing):
            raise ConfigError(
                f"LoRA weights do not match this adapter (rank={self.lora_rank}, targets={self.lora_target_modules}): "
                f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}); "
                "load them with the lora_rank/lora_target_modules they were trained with"
            )
        for key in set(state_dict) & set(expected):
            if tuple(state_dict[key].shape) != tuple(expected[key].shape):
                raise ConfigError(
                    f"LoRA weight {key} has shape {tuple(state_dict[key].shape)} but this adapter expects "
                    f"{tuple(expected[key].shape)}: set lora_rank to the rank the weights were trained with"
                )
        from diffusers.training_utils import cast_training_params
        from peft.utils import set_peft_model_state_dict

        peft_state = {k.removeprefix(UNET_KEY_PREFIX): v for k, v in state_dict.items() if k in expected}
        set_peft_model_state_dict(self.unet, peft_state)
        cast_training_params(self.unet, dtype=torch.float32)
        return torch.nn.modules.module._IncompatibleKeys(missing, unexpected)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record what the LoRA weights belong to, so a reader knows which base model and adapter shape they need."""
        checkpoint["lora_config"] = {
            "pretrained_path": self.pretrained_path,
            "rank": self.lora_rank,
            "alpha": self.lora_alpha,
            "target_modules": list(self.lora_target_modules),
        }
