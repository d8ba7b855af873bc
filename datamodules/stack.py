"""The FIFO stack of synthetic blocks, kept on disk so that millions of images cost little RAM.

Each generation's filtered samples are one block: ``<root>/gen_<g>_images.npy`` (raw uint8 (N, C, H, W),
memory-mappable) and ``gen_<g>_labels.npy`` (int64), written and verified by ``datamodules.stack_blocks``; this
module keeps the queue of blocks (limits, eviction, the manifest) and reads them.
``<root>/manifest.json`` lists the blocks oldest first with their counts, shapes and SHA-256 checksums; it is the
single source of truth. Every file is written atomically (temp file in the same directory, fsync, ``os.replace``),
and the manifest is replaced only after the new block's files are complete, so a crash at any point leaves either
the old stack or the new one. Files the manifest does not list (left by such a crash) are ignored on open and
removed by the next ``push``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from common.errors import ConfigError
from common.io import atomic_write
from datamodules.stack_blocks import as_numpy, is_block_entry, is_owned_file, verify_block, write_block

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 2


#: stacks up to this size are held in memory once read (see ``images_in_memory``); larger ones are read with pread
IN_MEMORY_LIMIT_BYTES = 512 * 2**20

def _check_limit(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"stack {what} must be a positive integer or None (no limit), got {value!r}")
    return int(value)


class SyntheticStack(Dataset):
    """Generated blocks held oldest first: the last ``max_generations`` pushed blocks, whatever their sizes.

    A push evicts whole oldest blocks while more than ``max_generations`` blocks would be held (the paper's queue
    of capacity D/S = 3 generations) or, when ``max_samples`` is set, while the total would exceed that sample
    budget. ``None`` means no limit of that kind.

    Samples are ``(image uint8 (C, H, W), label int)``. Images are read through memory maps opened lazily in
    each process (workers included), so the object pickles cheaply; labels live in RAM for the mixer's statistics.
    """

    def __init__(self, root: str | os.PathLike, max_generations: int | None, max_samples: int | None = None, *,
                 verify: bool = True) -> None:
        """Open (or create) the stack at ``root``; ``verify=False`` skips the checksums (e.g. on non-zero DDP ranks
        after rank 0 has verified), since hashing a stack of millions of images takes a while."""
        self.root = Path(root)
        self.max_generations = _check_limit(max_generations, "max_generations (the number of generations kept)")
        self.max_samples = _check_limit(max_samples, "max_samples (the sample budget)")
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"stack root {self.root} exists and is not a directory: choose another path")
        self.root.mkdir(parents=True, exist_ok=True)
        self._blocks: list[dict[str, Any]] = []
        self._block_labels: list[np.ndarray] = []
        self._labels_cache: torch.Tensor | None = None
        self._memmaps: dict[int, np.ndarray] = {}
        self._memmap_pid = os.getpid()
        self._ram_images: torch.Tensor | None = None  # all images, for small stacks (per process)
        self._ram_pid: int | None = None
        self._fds: dict[int, int] = {}  # pread file descriptors of large stacks (per process)
        self._fd_pid: int | None = None
        self._open(verify)

    # ------------------------------------------------------------------ opening and verification
    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    def _open(self, verify: bool) -> None:
        """Load and verify what the manifest lists; evict down to the limits if reopened with smaller ones."""
        if not self.manifest_path.exists():
            return
        try:
            manifest = json.loads(self.manifest_path.read_text())
            blocks = list(manifest["blocks"])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ConfigError(
                f"stack manifest {self.manifest_path} is unreadable ({error}): restore it, or delete {self.root} "
                "to start the stack empty"
            ) from error
        for block in blocks:
            if not is_block_entry(block):
                raise ConfigError(
                    f"stack manifest {self.manifest_path} has a malformed block entry {block!r}: restore the manifest, "
                    f"or delete {self.root} to start the stack empty"
                )
            labels = verify_block(self.root, block, verify)
            self._blocks.append(block)
            self._block_labels.append(labels)
        shapes = {tuple(block["shape"]) for block in self._blocks}
        if len(shapes) > 1:
            raise ConfigError(
                f"stack manifest {self.manifest_path} lists blocks of different image shapes {sorted(shapes)}: "
                f"delete {self.root} to start the stack empty"
            )
        if self._over_limit(0, 0):
            held = (len(self._blocks), len(self))
            evicted = self._evict_to_fit(0, 0)
            log.warning(
                "synthetic stack at %s holds %d generations (%d samples), more than its limits (%s generations, %s "
                "samples): evicted oldest generations %s",
                self.root,
                *held,
                self.max_generations,
                self.max_samples,
                [block["generation"] for block in evicted],
            )
            self._write_manifest()
            self._delete_block_files(evicted)

    # ------------------------------------------------------------------ writing
    def push(
        self,
        images: torch.Tensor | np.ndarray,
        labels: torch.Tensor | np.ndarray,
        generation: int,
    ) -> None:
        """Add one generation's block, evicting whole oldest blocks while the limits would be exceeded."""
        image_array = np.ascontiguousarray(as_numpy(images))
        label_array = as_numpy(labels)
        if image_array.dtype != np.uint8 or image_array.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {image_array.dtype} {image_array.shape}")
        count = image_array.shape[0]
        if label_array.shape != (count,) or not np.issubdtype(label_array.dtype, np.integer):
            raise ValueError(
                f"labels must be integers of shape ({count},), got {label_array.dtype} {label_array.shape}"
            )
        self.push_batches([(image_array, label_array)], count, tuple(image_array.shape[1:]), generation)

    def push_batches(
        self,
        batches: Iterable[tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray]],
        count: int,
        image_shape: tuple[int, int, int],
        generation: int,
    ) -> None:
        """Add one generation's block of ``count`` images of ``image_shape`` read from ``batches`` of (uint8 images,
        labels) as they come: the block file and its checksum are written incrementally, so the block is never
        held in memory (the file is the same, byte for byte, as ``push`` of the concatenated batches writes)."""
        generation, count, image_shape = int(generation), int(count), tuple(int(s) for s in image_shape)
        if generation in self.generations:
            raise ValueError(
                f"generation {generation} is already in the stack at {self.root} (held: {self.generations})"
            )
        if self.image_shape is not None and image_shape != self.image_shape:
            raise ValueError(f"block images have shape {image_shape} but the stack holds {self.image_shape}")
        if self.max_samples is not None and count > self.max_samples:
            raise ConfigError(
                f"generation {generation} has {count} samples, more than the stack's sample budget {self.max_samples}: "
                f"raise data.regime.capacity to at least {count}, unset it (keep whole generations only) "
                "or generate fewer samples per generation"
            )

        self._remove_strays()
        block, labels = write_block(self.root, generation, batches, count, image_shape)

        evicted = self._evict_to_fit(1, count)
        self._blocks.append(block)
        self._block_labels.append(labels)
        self._labels_cache = None
        self._ram_images = None
        # the manifest switches to the new stack in one rename; evicted files only become strays before deletion
        self._write_manifest()
        self._delete_block_files(evicted)

    def _over_limit(self, incoming_blocks: int, incoming_samples: int) -> bool:
        too_many = self.max_generations is not None and len(self._blocks) + incoming_blocks > self.max_generations
        too_large = self.max_samples is not None and len(self) + incoming_samples > self.max_samples
        return too_many or too_large

    def _evict_to_fit(self, incoming_blocks: int, incoming_samples: int) -> list[dict[str, Any]]:
        """Drop oldest blocks from memory until the incoming block fits the limits; the caller deletes their files."""
        evicted = []
        while self._blocks and self._over_limit(incoming_blocks, incoming_samples):
            block = self._blocks.pop(0)
            self._block_labels.pop(0)
            self._memmaps.pop(block["generation"], None)
            self._close_reader(block["generation"])
            evicted.append(block)
        self._labels_cache = None
        self._ram_images = None
        return evicted

    def _write_manifest(self) -> None:
        text = json.dumps(self.manifest, indent=2).encode()
        atomic_write(self.manifest_path, lambda handle: handle.write(text))

    def _delete_block_files(self, blocks: list[dict[str, Any]]) -> None:
        for block in blocks:
            for entry in block["files"].values():
                (self.root / entry["name"]).unlink(missing_ok=True)

    def _remove_strays(self) -> None:
        """Delete files of ours the manifest does not list (a crash between writing a block and the manifest)."""
        listed = {entry["name"] for block in self._blocks for entry in block["files"].values()}
        for path in self.root.iterdir():
            if path.is_file() and is_owned_file(path.name) and path.name not in listed:
                log.info("removing stray synthetic stack file %s", path)
                path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ reading
    @property
    def manifest(self) -> dict[str, Any]:
        """A JSON-serialisable description of the blocks, oldest first (saved in the run state)."""
        return {"version": MANIFEST_VERSION, "max_generations": self.max_generations, "max_samples": self.max_samples,
                "blocks": copy.deepcopy(self._blocks)}

    @property
    def generations(self) -> list[int]:
        return [block["generation"] for block in self._blocks]

    @property
    def block_sizes(self) -> list[int]:
        return [block["count"] for block in self._blocks]

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """(C, H, W) of the held images; None while the stack is empty."""
        return tuple(self._blocks[0]["shape"]) if self._blocks else None

    @property
    def labels(self) -> torch.Tensor:
        """All labels (int64) in index order, from RAM."""
        if self._labels_cache is None:
            merged = np.concatenate(self._block_labels) if self._block_labels else np.zeros(0, dtype=np.int64)
            self._labels_cache = torch.from_numpy(merged.astype(np.int64))
        return self._labels_cache

    def __len__(self) -> int:
        return sum(block["count"] for block in self._blocks)

    def _offsets(self) -> np.ndarray:
        """Start index of each block, plus the total at the end."""
        return np.concatenate([[0], np.cumsum(self.block_sizes, dtype=np.int64)])

    def _images_of(self, block_position: int) -> np.ndarray:
        """The block's images as a read-only memory map, opened once per process."""
        if self._memmap_pid != os.getpid():
            self._memmaps, self._memmap_pid = {}, os.getpid()
        block = self._blocks[block_position]
        images = self._memmaps.get(block["generation"])
        if images is None:
            images = np.load(self.root / block["files"]["images"]["name"], mmap_mode="r", allow_pickle=False)
            self._memmaps[block["generation"]] = images
        return images

    def _normalise_indices(self, indices: np.ndarray) -> np.ndarray:
        total = len(self)
        if indices.size and (indices.min() < -total or indices.max() >= total):
            bad = indices[(indices < -total) | (indices >= total)][0]
            raise IndexError(f"index {bad} out of range for a synthetic stack of {total} samples")
        return np.where(indices < 0, indices + total, indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        position = int(self._normalise_indices(np.asarray([int(index)]))[0])
        offsets = self._offsets()
        block_position = int(np.searchsorted(offsets, position, side="right") - 1)
        local = position - int(offsets[block_position])
        image = torch.from_numpy(np.array(self._images_of(block_position)[local]))
        return image, int(self._block_labels[block_position][local])

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Read many samples at once: one sorted fancy-index per block, then back into the requested order."""
        flat = self._normalise_indices(as_numpy(indices).astype(np.int64).reshape(-1))
        shape = self.image_shape or (0, 0, 0)
        images = np.empty((len(flat), *shape), dtype=np.uint8)
        offsets = self._offsets()
        block_of = np.searchsorted(offsets, flat, side="right") - 1
        in_memory = self.images_in_memory()
        if in_memory is not None:
            return in_memory[torch.from_numpy(flat)], self.labels[torch.from_numpy(flat)]
        # A large stack is read row by row with pread: random rows of a memory map fault whole pages around them
        # into this process's resident memory, so a million-image stack would end up in RSS; pread leaves them in
        # the kernel's page cache only.
        row_bytes = int(np.prod(shape))
        for block_position in np.unique(block_of):
            rows = np.nonzero(block_of == block_position)[0]
            local = flat[rows] - offsets[block_position]
            order = np.argsort(local, kind="stable")  # ascending reads are kinder to the disk
            fd, data_offset = self._reader_of(int(block_position))
            for row, position in zip(rows[order].tolist(), local[order].tolist()):
                os.preadv(fd, [memoryview(images[row]).cast("B")], data_offset + position * row_bytes)
        return torch.from_numpy(images), self.labels[torch.from_numpy(flat)]

    def images_in_memory(self) -> torch.Tensor | None:
        """All images as one in-memory uint8 tensor when the stack is small (<= IN_MEMORY_LIMIT_BYTES), else None.

        Read once per process and kept until the stack changes: batches are then one tensor gather, as fast as
        indexing real data held in memory. Large stacks stay on disk (see ``get_batch``).
        """
        if not self._blocks or self.image_shape is None:
            return None
        if len(self) * int(np.prod(self.image_shape)) > IN_MEMORY_LIMIT_BYTES:
            return None
        cache = self._ram_images
        if cache is None or self._ram_pid != os.getpid() or len(cache) != len(self):
            cache = torch.from_numpy(np.concatenate([np.asarray(self._images_of(b)) for b in range(len(self._blocks))]))
            self._ram_images, self._ram_pid = cache, os.getpid()
        return cache

    def _close_reader(self, generation: int) -> None:
        fds = self._fds if self._fd_pid == os.getpid() else {}
        if generation in fds:
            os.close(fds.pop(generation))

    def _reader_of(self, block_position: int) -> tuple[int, int]:
        """(file descriptor, byte offset of the pixel data) of a block's .npy file, opened once per process."""
        images = self._images_of(block_position)  # the memory map knows where the .npy header ends
        if self._fd_pid != os.getpid():
            self._fds, self._fd_pid = {}, os.getpid()
        generation = self._blocks[block_position]["generation"]
        if generation not in self._fds:
            self._fds[generation] = os.open(images.filename, os.O_RDONLY)
        return self._fds[generation], int(images.offset)

    # ------------------------------------------------------------------ pickling (DataLoader workers)
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_memmaps"] = {}  # each process maps the files itself
        state["_fds"], state["_fd_pid"] = {}, None
        state["_ram_images"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._memmap_pid = os.getpid()

    def __repr__(self) -> str:
        return (
            f"SyntheticStack(root={str(self.root)!r}, max_generations={self.max_generations}, "
            f"max_samples={self.max_samples}, samples={len(self)}, "
            f"generations={self.generations})"
        )
