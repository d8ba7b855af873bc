"""A LoRA epoch of the tiny Stable Diffusion with the latent cache vs encoding every image at every step.

``latent_cache_epoch`` (target <= 0.75): seconds of one generator training epoch (Trainer.fit, every step of the
epoch, timed from the epoch's start to its end) reading cached latent moments / decoding, resizing and VAE-encoding
every image at its step, on a fake Hard ImageNet tree of JPEGs (landscape photos, as ImageNet's) at the generator's
own view. The cache is built before the timed epochs (once per run in the loop); its build time is printed beside,
with the number of images it encoded.

What the cache saves depends on what the VAE encoder costs beside the UNet's forward and backward pass, so the
model is one with SD 1.5's proportions (``--model sd15``, the default: SD 1.5's blocks, layers and heads, every
channel count divided by 8, at 128 px; tests/fakes/tiny_sd.py): its VAE encoder costs 1.37 UNet forward passes,
SD 1.5's at 512 px 1.39 (both counted on torch's meta device and printed). ``--model tiny`` is the tests' tiny SD,
whose small VAE makes the encoder a smaller share of the step.

    python benchmarks/bench_latent_cache.py [--quick] [--model sd15|tiny] [--json PATH]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import lightning as L
from harness import alternate, apply_threads, base_parser, machine_facts, median, paired_ratio, ratio_entry, report
from lightning.pytorch.callbacks import Callback
from time_model import RATES

from callbacks.epoch_seeder import EpochSeeder
from datamodules.generational import GenerationalDataModule, TrainingSpec
from datamodules.hard_imagenet import HARD_IMAGENET_CLASSES, HardImageNet
from datamodules.latent_cache import LatentCache
from lightning_modules.stable_diffusion import StableDiffusionLoRA

#: the training resolution of each model (tests/fakes/tiny_sd.py)
RESOLUTIONS = {"tiny": 32, "sd15": 128}


class EpochTimer(Callback):
    """Seconds from the training epoch's start to its end (model loading and the cache build left out)."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        _synchronize(pl_module)
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        _synchronize(pl_module)
        self.seconds = time.perf_counter() - self.started


def _synchronize(module) -> None:
    """Wait for the GPU's queued work, so the epoch's seconds are its work's (a no-op on the CPU)."""
    import torch

    if module.device.type == "cuda":
        torch.cuda.synchronize(module.device)


def generator(sd_path: Path, resolution: int) -> StableDiffusionLoRA:
    return StableDiffusionLoRA(pretrained_path=str(sd_path), class_names=[name for _, _, name in HARD_IMAGENET_CLASSES],
                               lora_rank=4, lora_alpha=4, lr=1e-3, train_resolution=resolution,
                               generation_resolution=resolution, num_inference_steps=2)


def encoder_over_unet(sd_path: Path, resolution: int) -> float:
    """The VAE encoder's FLOPs per image over the UNet forward pass's, counted on torch's meta device."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(sd_path / "vae"))
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(sd_path / "unet"))
        factor = 2 ** (len(vae.config.block_out_channels) - 1)
        latent = torch.randn(1, 4, resolution // factor, resolution // factor)
        text = torch.randn(1, 77, unet.config.cross_attention_dim)
        flops = []
        for run in (lambda: vae.encode(torch.randn(1, 3, resolution, resolution)),
                    lambda: unet(latent, torch.tensor([10]), encoder_hidden_states=text)):
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                run()
            flops.append(counter.get_total_flops())
    return flops[0] / flops[1]


def fit_epoch(sd_path: Path, data: GenerationalDataModule, batch_size: int, cache: LatentCache | None,
              resolution: int, accelerator: str = "cpu", precision: str = "32-true") -> float:
    """One training epoch (the cache built first when it is not yet); returns the epoch's seconds."""
    from callbacks.latent_cache_builder import LatentCacheBuilder

    L.seed_everything(0, verbose=False)
    module = generator(sd_path, resolution)
    spec = TrainingSpec(batch_size=batch_size, epoch_seed=0, image_size=resolution, latents=cache)
    timer = EpochTimer()
    callbacks = [timer, EpochSeeder(0)]
    if cache is not None:
        callbacks.append(LatentCacheBuilder(cache, data, data.view(resolution), batch_size))
    trainer = L.Trainer(accelerator=accelerator, devices=1, precision=precision, max_epochs=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=callbacks)
    trainer.fit(module, datamodule=data.for_training(spec))
    return timer.seconds


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=None, help="training images per class (default 8)")
    parser.add_argument("--model", choices=sorted(RESOLUTIONS), default="sd15",
                        help="sd15: SD 1.5's proportions at 128 px (default); tiny: the tests' tiny SD at 32 px")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    per_class = args.per_class or (2 if args.quick else 8)
    model = "tiny" if args.quick else args.model
    resolution = RESOLUTIONS[model]
    repeats = args.repeats or (1 if args.quick else 3)
    from tests.fakes.hard_imagenet import write_fake_hard_imagenet
    from tests.fakes.tiny_sd import build_tiny_sd

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        imagenet_root, mask_root = write_fake_hard_imagenet(work / "data", n_train_per_class=per_class,
                                                            n_val_per_class=1, size=96, width=128)
        sd_path = build_tiny_sd(work / "tiny_sd", shape=model)
        proportion = encoder_over_unet(sd_path, resolution)
        data = GenerationalDataModule(HardImageNet(imagenet_root, mask_root, val_fraction=0.0), batch_size=4)
        data.validate()
        cache = LatentCache(work / "latent_cache")
        started = time.perf_counter()
        build_epoch = fit_epoch(sd_path, data, args.batch_size, cache, resolution)  # builds the cache, then an epoch
        build_seconds = time.perf_counter() - started - build_epoch
        encoded = data.n_real
        samples = alternate({"encode": lambda: fit_epoch(sd_path, data, args.batch_size, None, resolution),
                             "cached": lambda: fit_epoch(sd_path, data, args.batch_size, cache, resolution)}, repeats)
    ratio = paired_ratio(samples, "cached", "encode")
    sd15 = RATES["vae_encoder_tflop"].value / RATES["unet_forward_tflop"].value  # counted by time_model.py
    print(f"model {model} at {resolution} px: VAE encoder / UNet forward FLOPs {proportion:.2f} (SD 1.5 at 512 px: "
          f"{sd15:.2f})")
    print(f"generator epoch over {data.n_real} real images, batch {args.batch_size}: encode every step "
          f"{median(samples['encode']):.2f} s, cached {median(samples['cached']):.2f} s; the cache build (once per "
          f"run, {encoded} images, model loading included) {build_seconds:.2f} s")
    out = {"quick": args.quick, "machine": machine_facts(), "model": model, "resolution": resolution,
           "encoder_over_unet_flops": round(proportion, 4), "n_real": data.n_real, "batch_size": args.batch_size,
           "samples": samples, "cache_build_s": round(build_seconds, 3),
           "ratios": [ratio_entry("latent_cache_epoch", ratio, "<= 0.75")]}
    report("latent_cache", out, args.json)
    return out


if __name__ == "__main__":
    main()
