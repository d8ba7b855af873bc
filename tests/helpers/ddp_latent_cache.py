"""Fit the tiny Stable Diffusion for one step with the latent cache on N CPU processes; every rank saves how many
images it encoded and the moments its loader read.

Run by tests/e2e/test_latent_cache_under_ddp.py as a script, because Lightning's DDP launcher re-executes it per
rank: ``python ddp_latent_cache.py DEVICES OUT_DIR TINY_SD_FOLDER IMAGENET_ROOT MASK_ROOT``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import lightning as L  # noqa: E402
import torch  # noqa: E402

from callbacks.latent_cache_builder import LatentCacheBuilder  # noqa: E402
from datamodules.generational import GenerationalDataModule, TrainingSpec  # noqa: E402
from datamodules.hard_imagenet import HARD_IMAGENET_CLASSES, HardImageNet  # noqa: E402
from datamodules.latent_cache import LatentCache  # noqa: E402
from lightning_modules.stable_diffusion import StableDiffusionLoRA  # noqa: E402

CHUNK = 8  # images per chunk: several chunks, so that every rank has a share


def main(devices: int, out_dir: str, tiny_sd: str, imagenet_root: str, mask_root: str) -> None:
    data = GenerationalDataModule(HardImageNet(imagenet_root, mask_root, val_fraction=0.0), batch_size=2)
    data.validate()
    cache = LatentCache(Path(out_dir) / "latent_cache", chunk_size=CHUNK)
    view = data.view(16)
    builder = LatentCacheBuilder(cache, data, view, batch_size=4)
    torch.manual_seed(0)
    sd = StableDiffusionLoRA(pretrained_path=tiny_sd, class_names=[name for _, _, name in HARD_IMAGENET_CLASSES],
                             lora_rank=4, lora_alpha=4, train_resolution=16, num_inference_steps=2,
                             generation_resolution=16)
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto", max_steps=1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, use_distributed_sampler=False, callbacks=[builder])
    spec = TrainingSpec(batch_size=2, epoch_seed=0, image_size=16, latents=cache)
    trainer.fit(sd, datamodule=data.for_training(spec))
    everything = cache.training_set.__getitems__(list(range(cache.training_set.n_real)))["image"]
    torch.save({"encoded": builder.encoded, "moments": everything},
               Path(out_dir) / f"latents_{devices}_rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(int(sys.argv[1]), *sys.argv[2:6])
