"""The disk a run needs per generation, estimated before the first stage, so a run that cannot fit stops at once
instead of hours later in the middle of a block.

Per generation the run writes (sizes in bytes, from S = loop.samples_per_generation and the stored image shape
C x H x W of the generator's output, uint8):

- the raw shards ``gen_XX/shards/``: S x (C·H·W + 16) (each image, its int64 index and label);
- the stack block: at most S x (C·H·W + 8) (every sample kept, int64 labels; the filters keep fewer);
- Stable Diffusion's latent cache (``model.init_args.cache_latents``): the float32 mean and std of each block
  image's latent, at most S x 2 x 4 x (resolution / 8)² x 4 bytes (128 KiB an image at 512), evicted with the block;
  once per run the same for every real training image (``latent_cache/real-*``);
- checkpoints: float32 weights plus Adam's two moments, 12 bytes a parameter: the generator's ``last.ckpt`` (the
  parameters the configured generator module holds: the DCGAN's and DDPM's networks; Stable Diffusion's LoRA
  adapter, about 10 MB, is built only when it trains and is not counted) and each classifier's ``best.ckpt`` and
  ``last.ckpt`` (parameters counted on torch's meta device: nothing is allocated or loaded).

Per-sample scores, sheets and TensorBoard files are small beside these and not counted. The stack evicts old blocks
(their files are deleted) once it holds ``data.regime.window``; raw shards stay unless
``loop.keep_raw_shards: false`` deletes each generation's after its push is recorded.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from common.errors import ConfigError
from lightning_modules.networks.registry import get_arch
from simulation.config import ClassifierConfig

BYTES_PER_PARAMETER = 12  # float32 weight + Adam's first and second moments
GIB = 2**30


@dataclass(frozen=True)
class GenerationDisk:
    """Bytes one generation writes (see the module docstring for what each part counts)."""

    raw_shards: int
    stack_block: int
    generator_checkpoint: int
    classifier_checkpoints: int
    latent_block: int = 0

    @property
    def total(self) -> int:
        return (self.raw_shards + self.stack_block + self.latent_block + self.generator_checkpoint
                + self.classifier_checkpoints)

    @property
    def kept(self) -> int:
        """What stays on disk after the generation with loop.keep_raw_shards: false."""
        return self.total - self.raw_shards

    def describe(self) -> str:
        latents = f", latent cache <= {self.latent_block / GIB:.2f}" if self.latent_block else ""
        return (f"{self.total / GIB:.2f} GiB per generation (raw shards {self.raw_shards / GIB:.2f}, stack block <= "
                f"{self.stack_block / GIB:.2f}{latents}, checkpoints: generator {self.generator_checkpoint / GIB:.2f}, "
                f"classifiers {self.classifier_checkpoints / GIB:.2f})")


def classifier_parameters(config: ClassifierConfig, num_classes: int, in_chans: int) -> int:
    """Parameters of a classifier's network, built on the meta device (no memory, no weights read)."""
    with torch.device("meta"):
        network = get_arch(config.arch).build(num_classes, in_chans, config.dropout)
    return sum(p.numel() for p in network.parameters())


def estimate_generation_disk(samples: int, image_shape: tuple[int, ...], generator_parameters: int,
                             classifier_parameter_counts: list[int], latent_bytes_per_image: int = 0) -> GenerationDisk:
    pixels = math.prod(int(d) for d in image_shape)
    return GenerationDisk(
        raw_shards=samples * (pixels + 16),
        stack_block=samples * (pixels + 8),
        latent_block=samples * latent_bytes_per_image,
        generator_checkpoint=BYTES_PER_PARAMETER * generator_parameters,
        classifier_checkpoints=sum(2 * BYTES_PER_PARAMETER * n for n in classifier_parameter_counts),
    )


def free_bytes(path: Path) -> int:
    """Free bytes of the filesystem that holds ``path`` (or would hold it: its nearest existing parent)."""
    existing = Path(os.path.abspath(path))
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return shutil.disk_usage(existing).free


def run_total(per_generation: GenerationDisk, generations_left: int, blocks_kept: int, keep_raw_shards: bool,
              once: int = 0) -> int:
    """Bytes the remaining generations add: every checkpoint, the raw shards of each (or of one at a time when they
    are deleted after each push), the blocks the stack keeps (``blocks_kept``; older ones are evicted) with their
    latents, and ``once``: what the run writes once (the real images' latent cache)."""
    shards = per_generation.raw_shards * (generations_left if keep_raw_shards else 1)
    blocks = (per_generation.stack_block + per_generation.latent_block) * min(generations_left, blocks_kept)
    checkpoints = (per_generation.generator_checkpoint + per_generation.classifier_checkpoints) * generations_left
    return shards + blocks + checkpoints + once


def check_disk(per_generation: GenerationDisk, generations_left: int, blocks_kept: int, run_path: Path,
               keep_raw_shards: bool, reclaimable: int = 0, once: int = 0) -> str:
    """The progress line of the estimate; ConfigError when the filesystem cannot hold the next generation.

    ``reclaimable``: bytes the run frees before it writes (a previous run that ``loop.overwrite`` removes);
    ``once``: bytes the run writes once before the first generation (the real images' latent cache).
    """
    free = free_bytes(run_path) + reclaimable
    whole = run_total(per_generation, generations_left, blocks_kept, keep_raw_shards, once)
    shards = "raw shards kept" if keep_raw_shards else "raw shards deleted after each push"
    if once:
        shards += f", latent cache of the real images {once / GIB:.2f} GiB once"
    line = (f"disk: about {per_generation.describe()}; the {generations_left} generation(s) to go add about "
            f"{whole / GIB:.2f} GiB ({shards}); {free / GIB:.2f} GiB free for {run_path}")
    needed = per_generation.total + once
    if free < needed:
        what = per_generation.describe() + (f"; the real images' latent cache {once / GIB:.2f} GiB" if once else "")
        raise ConfigError(
            f"not enough disk for the next generation in {run_path}: it needs about {needed / GIB:.2f} GiB ({what}) "
            f"and {free / GIB:.2f} GiB are free: free some space, choose a "
            "loop.run_dir on a larger filesystem, or lower loop.samples_per_generation")
    return line


def check_view_store_disk(needed: int, folder: Path) -> str | None:
    """The progress line of the view store's one-time build (None when nothing is left to decode); ConfigError when
    its filesystem cannot hold it."""
    if not needed:
        return None
    free = free_bytes(folder)
    if free < needed:
        raise ConfigError(
            f"not enough disk for the view store in {folder}: decoding the real images once needs about "
            f"{readable_size(needed)} and {readable_size(free)} are free there: free some space, set "
            "data.view_store_dir to a larger filesystem, or set data.view_store false (decode at every read)")
    return f"view store: about {readable_size(needed)} to decode once into {folder}; {readable_size(free)} free there"


def readable_size(count: int) -> str:
    """Bytes as GiB with two decimals, or as MiB below 1 GiB (a tiny run's store)."""
    return f"{count / GIB:.2f} GiB" if count >= GIB else f"{count / 2**20:.1f} MiB"
