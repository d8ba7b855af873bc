"""A latent diffusion generator's latent distributions of the training images, encoded once per run, read like the
stack.

Stable Diffusion's LoRA fine-tuning trains only the UNet's adapter; the VAE is frozen, so encoding every image at
every step of every epoch of every generation recomputes the same distribution again and again. As diffusers'
``cache_latents`` does, each image's diagonal Gaussian (its mean and std) is encoded once instead: every real training
image once per run (before the first generator trains) and every stack block once (before the first generator that
trains on it; the last generation's block, which no generator trains on, is never encoded). A training step then
draws its latents from the stored distribution with the same random numbers the encoding path draws (the generator's
``sample_latents``), so a cached run trains on the same latents as an uncached one. A generator opts in with
``cache_latents = True`` and provides ``latent_moments`` (uint8 images -> float32 moments), ``latent_identity`` (what
they depend on besides the image) and ``cached_latent_bytes`` (per image, for the disk plan).

Layout, under ``<run_dir>/latent_cache/``: one part per encoded set, ``real-<key>`` and ``gen_<g>-<key>``, split into
chunks of ``chunk_size`` images (``<part>-c<i>.safetensors``: float32 rows (n, 2C, h, w), the C mean channels then the
C std channels, and a ``.sha256`` file; ``common.tensor_chunks``). The key hashes everything the latents depend on
(the images: the real files or the block's checksum; the view; the VAE folder, its dtype and the resolution), so a
part is reused only where it is right. DDP ranks build disjoint chunks (chunk i on rank i mod world size) and check
their own chunks' checksums before trusting them; a corrupted or unfinished chunk is built again, and a killed build
resumes at its first unfinished chunk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from common.image_views import ImageView
from common.samples import make_sample
from common.tensor_chunks import chunk_state, map_chunk, remove_chunk, write_chunk
from datamodules.base import LabelledSplit
from datamodules.mixing import MixedTrainSet

log = logging.getLogger(__name__)

#: images per chunk file: 512 latents of SD 1.5 at 512 px are 128 MiB as float32
DEFAULT_CHUNK_SIZE = 512

Encoder = Callable[[torch.Tensor], torch.Tensor]  # uint8 images (B, 3, S, S) -> float32 moments (B, 2C, h, w)


def identity_key(identity: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable description."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def real_split_identity(split: LabelledSplit) -> dict[str, Any]:
    """What identifies a real split's images: its files (folder datasets) or a hash of its pixels (in memory)."""
    paths = getattr(split, "image_paths", None)
    if paths is not None:
        return {"files": identity_key({"paths": list(paths)}), "count": len(paths)}
    if split.images is None:
        raise ValueError(f"{type(split).__name__} names neither its files nor holds its images")
    digest = hashlib.sha256(split.images.contiguous().numpy().tobytes()).hexdigest()
    return {"pixels": digest, "count": len(split)}


@dataclass(frozen=True)
class LatentPart:
    """One set of images encoded together (the real training split, or one stack block)."""

    name: str
    key: str
    count: int

    @property
    def stem(self) -> str:
        return f"{self.name}-{self.key}"

    def chunk_ranges(self, chunk_size: int) -> list[tuple[int, int]]:
        return [(start, min(start + chunk_size, self.count)) for start in range(0, self.count, chunk_size)]


class ChunkedRows:
    """Rows of a part's chunk files, gathered by index through memory maps opened once per process."""

    def __init__(self, paths: list[Path], ranges: list[tuple[int, int]]) -> None:
        self.paths, self.ranges = paths, ranges
        self.starts = np.asarray([start for start, _ in ranges], dtype=np.int64)
        self.count = ranges[-1][1] if ranges else 0
        self._maps: list[np.ndarray] | None = None
        self._pid: int | None = None

    def _chunks(self) -> list[np.ndarray]:
        if self._maps is None or self._pid != os.getpid():
            self._maps, self._pid = [map_chunk(path) for path in self.paths], os.getpid()
        return self._maps

    @property
    def row_shape(self) -> tuple[int, ...]:
        return tuple(self._chunks()[0].shape[1:])

    def gather(self, indices: torch.Tensor) -> torch.Tensor:
        """float32 rows for ``indices`` (0 <= index < count), in the order asked."""
        flat = np.asarray(indices, dtype=np.int64).reshape(-1)
        chunks = self._chunks()
        out = np.empty((len(flat), *self.row_shape), dtype=chunks[0].dtype)
        chunk_of = np.searchsorted(self.starts, flat, side="right") - 1
        for chunk in np.unique(chunk_of):
            rows = np.nonzero(chunk_of == chunk)[0]
            out[rows] = chunks[chunk][flat[rows] - self.starts[chunk]]
        return torch.from_numpy(out)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": None, "_pid": None}


class LatentSplit(LabelledSplit):
    """A real split whose samples' ``image`` is the image's latent moments, float32 (2C, h, w)."""

    def __init__(self, rows: ChunkedRows, labels: torch.Tensor, groups: torch.Tensor) -> None:
        self.rows, self.images = rows, None
        self.labels, self.groups = labels, groups

    def __getitem__(self, index: int):
        return make_sample(self.rows.gather(torch.tensor([int(index)]))[0], self.labels[index], self.groups[index])


class LatentStack:
    """The stack's blocks as latent moments: what ``MixedTrainSet`` reads from a stack (``get_batch``, labels)."""

    def __init__(self, blocks: list[ChunkedRows], labels: torch.Tensor) -> None:
        self.blocks, self.labels = blocks, labels
        self.offsets = np.concatenate([[0], np.cumsum([b.count for b in blocks], dtype=np.int64)])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def image_shape(self) -> tuple[int, ...] | None:
        return self.blocks[0].row_shape if self.blocks else None

    def images_in_memory(self) -> None:
        return None

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = np.asarray(indices, dtype=np.int64).reshape(-1)
        block_of = np.searchsorted(self.offsets, flat, side="right") - 1
        out = torch.empty((len(flat), *self.image_shape), dtype=torch.float32)
        for block in np.unique(block_of):
            rows = np.nonzero(block_of == block)[0]
            out[torch.from_numpy(rows)] = self.blocks[block].gather(torch.from_numpy(flat[rows] - self.offsets[block]))
        return out, self.labels[torch.from_numpy(flat)]


class _ImagesOf(Dataset):
    """Only the images of a split's samples (the loader that feeds the encoder)."""

    def __init__(self, split: LabelledSplit, start: int, stop: int) -> None:
        self.split, self.start, self.stop = split, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.as_tensor(self.split[self.start + index]["image"])


class LatentCache:
    """The run's latent cache folder: builds the parts a generator trains on and opens them for its loader."""

    def __init__(self, root: str | os.PathLike, chunk_size: int = DEFAULT_CHUNK_SIZE, num_workers: int = 0) -> None:
        self.root = Path(root)
        self.chunk_size = int(chunk_size)
        self.num_workers = int(num_workers)
        self.training_set: MixedTrainSet | None = None  # set by ``prepare``, read by the generator's loader

    def chunk_paths(self, part: LatentPart) -> list[Path]:
        return [self.root / f"{part.stem}-c{i:04d}.safetensors" for i in range(len(part.chunk_ranges(self.chunk_size)))]

    # ------------------------------------------------------------------ building
    def remove_stale(self, parts: list[LatentPart]) -> None:
        """Delete chunk files of parts no longer needed (evicted blocks, other settings); rank 0, before a build."""
        if not self.root.is_dir():
            return
        keep = {part.stem for part in parts}
        for path in self.root.iterdir():
            stem = path.name.split("-c")[0]
            if path.is_file() and path.name.endswith((".safetensors", ".sha256")) and stem not in keep:
                path.unlink(missing_ok=True)

    def build(self, part: LatentPart, images: Callable[[int, int], Dataset] | LabelledSplit, encode: Encoder,
              batch_size: int, rank: int = 0, world_size: int = 1) -> int:
        """Encode this rank's chunks of ``part`` that are missing or corrupted; return how many images it encoded.

        ``images``: the split to read (real data: decoded in ``num_workers`` workers), or a function (start, stop)
        -> dataset of those images (a stack block)."""
        self.root.mkdir(parents=True, exist_ok=True)
        encoded = 0
        for index, ((start, stop), path) in enumerate(zip(part.chunk_ranges(self.chunk_size), self.chunk_paths(part))):
            if index % world_size != rank:
                continue
            state = chunk_state(path, verify=True)
            if state == "ok":
                continue
            if state == "corrupted":
                log.warning("latent cache chunk %s does not match its checksum: encoding it again", path)
            remove_chunk(path)
            dataset = images(start, stop) if callable(images) else _ImagesOf(images, start, stop)
            loader = DataLoader(dataset, batch_size=batch_size, num_workers=self.num_workers)
            rows = torch.cat([encode(batch).float().cpu() for batch in loader])
            write_chunk(path, rows)
            encoded += stop - start
        return encoded

    def open(self, part: LatentPart) -> ChunkedRows:
        """The part's rows (every chunk built and checked by the rank that built it)."""
        paths = self.chunk_paths(part)
        missing = [str(p) for p in paths if chunk_state(p, verify=False) != "ok"]
        if missing:
            raise RuntimeError(f"latent cache chunks are missing after the build: {missing[:3]}")
        return ChunkedRows(paths, part.chunk_ranges(self.chunk_size))

    # ------------------------------------------------------------------ the generator's training set
    def prepare(self, real: LabelledSplit, real_identity: dict[str, Any], stack, view: ImageView,
                encoder_identity: dict[str, Any], encode: Encoder, batch_size: int, rank: int = 0,
                world_size: int = 1, barrier: Callable[[], None] = lambda: None) -> int:
        """Build what is missing for training on ``real`` (seen through ``view``) and ``stack``, then set
        ``training_set``: the ``MixedTrainSet`` of latents with the indices the image set has. Return the images
        this rank encoded."""
        common = {"view": [view.size, view.resize, view.squash], "encoder": encoder_identity}
        real_part = LatentPart("real", identity_key({**common, "real": real_identity}), len(real))
        blocks = []
        if stack is not None and len(stack):
            offsets = np.concatenate([[0], np.cumsum(stack.block_sizes)])
            for position, block in enumerate(stack.manifest["blocks"]):
                identity = {**common, "generation": block["generation"],
                            "images": block["files"]["images"]["sha256"]}
                part = LatentPart(f"block{block['generation']:04d}", identity_key(identity), block["count"])
                blocks.append((part, int(offsets[position])))
        parts = [real_part] + [part for part, _ in blocks]
        if rank == 0:
            self.remove_stale(parts)
        barrier()
        encoded = self.build(real_part, real, encode, batch_size, rank, world_size)
        for part, offset in blocks:
            def block_images(start: int, stop: int, offset: int = offset) -> Dataset:
                images, _ = stack.get_batch(torch.arange(offset + start, offset + stop))
                return view(images)
            encoded += self.build(part, block_images, encode, batch_size, rank, world_size)
        barrier()
        latent_real = LatentSplit(self.open(real_part), real.labels, real.groups)
        latent_stack = LatentStack([self.open(part) for part, _ in blocks], stack.labels) if blocks else None
        self.training_set = MixedTrainSet(latent_real, latent_stack)
        return encoded
