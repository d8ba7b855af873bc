"""A LoRA epoch of the tiny Stable Diffusion with the latent cache vs encoding every image at every step.

``latent_cache_epoch`` (target <= 0.75): seconds of one generator training epoch (Trainer.fit, every step of the
epoch, timed from the epoch's start to its end) reading cached latent moments / decoding, resizing and VAE-encoding
every image at its step, on a fake Hard ImageNet tree of JPEGs (landscape photos, as ImageNet's) at the generator's
own view. The cache is built before the timed epochs (once per run in the loop); its build time is printed beside,
with the number of images it encoded. The tiny SD (tests/fakes/tiny_sd.py) has a VAE and UNet far smaller than SD
1.5's; at 512 px SD 1.5's VAE encoder costs about as much as a UNet forward pass, so the real saving is larger.

    python benchmarks/bench_latent_cache.py [--quick] [--json PATH]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import lightning as L
from harness import alternate, apply_threads, base_parser, machine_facts, median, paired_ratio, ratio_entry, report
from lightning.pytorch.callbacks import Callback

from callbacks.epoch_seeder import EpochSeeder
from datamodules.generational import GenerationalDataModule, TrainingSpec
from datamodules.hard_imagenet import HARD_IMAGENET_CLASSES, HardImageNet
from datamodules.latent_cache import LatentCache
from lightning_modules.stable_diffusion import StableDiffusionLoRA

RESOLUTION = 32


class EpochTimer(Callback):
    """Seconds from the training epoch's start to its end (model loading and the cache build left out)."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.started


def generator(sd_path: Path) -> StableDiffusionLoRA:
    return StableDiffusionLoRA(pretrained_path=str(sd_path), class_names=[name for _, _, name in HARD_IMAGENET_CLASSES],
                               lora_rank=4, lora_alpha=4, lr=1e-3, train_resolution=RESOLUTION,
                               generation_resolution=RESOLUTION, num_inference_steps=2)


def fit_epoch(sd_path: Path, data: GenerationalDataModule, batch_size: int, cache: LatentCache | None) -> float:
    """One training epoch; returns its seconds."""
    from callbacks.latent_cache_builder import LatentCacheBuilder

    L.seed_everything(0, verbose=False)
    module = generator(sd_path)
    spec = TrainingSpec(batch_size=batch_size, epoch_seed=0, image_size=RESOLUTION, latents=cache)
    timer = EpochTimer()
    callbacks = [timer, EpochSeeder(0)]
    if cache is not None:
        callbacks.append(LatentCacheBuilder(cache, data, data.view(RESOLUTION), batch_size))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks)
    trainer.fit(module, datamodule=data.for_training(spec))
    return timer.seconds


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=None, help="training images per class (default 16)")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    per_class = args.per_class or (2 if args.quick else 16)
    repeats = args.repeats or (1 if args.quick else 3)
    from tests.fakes.hard_imagenet import write_fake_hard_imagenet
    from tests.fakes.tiny_sd import build_tiny_sd

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        imagenet_root, mask_root = write_fake_hard_imagenet(work / "data", n_train_per_class=per_class,
                                                            n_val_per_class=1, size=96, width=128)
        sd_path = build_tiny_sd(work / "tiny_sd")
        data = GenerationalDataModule(HardImageNet(imagenet_root, mask_root, val_fraction=0.0), batch_size=4)
        data.validate()
        cache = LatentCache(work / "latent_cache")
        started = time.perf_counter()
        build_epoch = fit_epoch(sd_path, data, args.batch_size, cache)  # builds the cache, then trains an epoch
        build_seconds = time.perf_counter() - started - build_epoch
        encoded = data.n_real
        samples = alternate({"encode": lambda: fit_epoch(sd_path, data, args.batch_size, None),
                             "cached": lambda: fit_epoch(sd_path, data, args.batch_size, cache)}, repeats)
    ratio = paired_ratio(samples, "cached", "encode")
    print(f"generator epoch over {data.n_real} real images, batch {args.batch_size}: encode every step "
          f"{median(samples['encode']):.2f} s, cached {median(samples['cached']):.2f} s; the cache build (once per "
          f"run, {encoded} images, model loading included) {build_seconds:.2f} s")
    out = {"quick": args.quick, "machine": machine_facts(), "n_real": data.n_real, "batch_size": args.batch_size,
           "samples": samples, "cache_build_s": round(build_seconds, 3),
           "ratios": [ratio_entry("latent_cache_epoch", ratio, "<= 0.75")]}
    report("latent_cache", out, args.json)
    return out


if __name__ == "__main__":
    main()
