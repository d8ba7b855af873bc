"""The classifiers' view of real images decoded once: a uint8 memory-mapped store per split, shared between runs.

A dataset read from image files (Hard ImageNet, Living-17) is otherwise decoded, resized and cropped again at every
classifier epoch, for every classifier, every generation and every seed. The store does it once: each split's images
as the classifiers see them go into ``<key>.images.npy`` (uint8 (N, 3, S, S), memory-mapped) and, where the split
has object masks, ``<key>.masks.npy`` (uint8 0/1 (N, 1, S, S)); ``<key>.json`` lists both files with their SHA-256
and is written last, so a store without it is unfinished and is built again. The split then reads like an in-memory
dataset (batches are one gather from the memory map; see ``StoredSplit``), so the classifier path is the in-memory
one. The key hashes the split's files (images and masks, in order) and the view (size, resize, squash), so every
classifier, generation and seed of the runs that share the data settings reuse one store; the folder is
``data.view_store_dir`` (default: ``.genbias_views/`` beside the run directory, so the runs of a sweep under one folder
share it). Every process checks the checksums once when it opens a store; a store that does not match is deleted and
built again, with one log line. A lock file lets one process build while the others (DDP ranks, parallel runs) wait.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from common.image_views import ImageView
from common.io import atomic_write, atomic_write_text, sha256_of_file
from common.samples import make_sample
from datamodules.base import LabelledSplit

log = logging.getLogger(__name__)

STORE_VERSION = 1


class StoredSplit(LabelledSplit):
    """A split of image files as one view saw them once: ``images`` is the store's uint8 memory map (as a tensor),
    samples ``(image, label, subgroup[, mask bool (1, S, S)])`` like the files' split. Other views (a generator at
    its resolution, Inception's FID) read the files again through ``viewed``."""

    #: its rows stay on disk: the mixer gathers batches from them instead of joining them with the stack in RAM
    memory_mapped = True

    def __init__(self, files_split, images_path: Path, masks_path: Path | None) -> None:
        self.files_split = files_split
        self.view = files_split.view
        self.image_paths, self.mask_paths = files_split.image_paths, files_split.mask_paths
        self.labels, self.groups = files_split.labels, files_split.groups
        self.images_path, self.masks_path = images_path, masks_path
        self.masks = masks_path is not None
        self._map()

    def _map(self) -> None:
        """Tensors sharing the files' (copy-on-write) memory maps: nothing is read until indexed."""
        self.images = torch.from_numpy(np.load(self.images_path, mmap_mode="c", allow_pickle=False))
        self.mask_rows = None if self.masks_path is None else torch.from_numpy(
            np.load(self.masks_path, mmap_mode="c", allow_pickle=False))

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without its rows (a spawned loader worker maps the files itself)."""
        return {**self.__dict__, "images": None, "mask_rows": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._map()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        mask = self.mask_rows[index].bool() if self.masks else None
        return make_sample(self.images[index].clone(), self.labels[index], self.groups[index], mask)

    def viewed(self, view: ImageView) -> LabelledSplit:
        return self if view == self.view else self.files_split.viewed(view)


def store_key(split, view: ImageView) -> str:
    identity = {"version": STORE_VERSION, "view": [view.size, view.resize, view.squash],
                "images": list(split.image_paths), "masks": list(split.mask_paths) if split.masks else None}
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:20]


class ViewStore:
    """The folder of stored splits; ``stored(split)`` returns the split read from its store, built if needed."""

    def __init__(self, root: str | Path, num_workers: int = 0, batch_size: int = 64) -> None:
        self.root = Path(root).expanduser()
        self.num_workers, self.batch_size = int(num_workers), int(batch_size)
        self.decoded = 0  # images this process decoded into stores

    def paths(self, key: str) -> dict[str, Path]:
        return {kind: self.root / f"{key}.{kind}.npy" for kind in ("images", "masks")} | {
            "manifest": self.root / f"{key}.json", "lock": self.root / f"{key}.lock"}

    def bytes_to_build(self, split) -> int:
        """Disk bytes ``stored(split)`` would write now: none once its store is built (its manifest is written last)."""
        paths = self.paths(store_key(split, split.view))
        return 0 if paths["manifest"].exists() else store_bytes(len(split), split.view.size, split.masks)

    def stored(self, split) -> StoredSplit:
        """``split`` (image files decoded through ``split.view``) read from its store; built when missing or damaged."""
        key = store_key(split, split.view)
        paths = self.paths(key)
        self.root.mkdir(parents=True, exist_ok=True)
        with open(paths["lock"], "a") as lock:
            locked = lock_file(lock)  # one process builds; the others wait here, then find it built
            try:
                problem = self._problem(paths, len(split), split.masks)
                if problem == "missing":
                    log.info("view store: decoding %d images once into %s", len(split), paths["images"])
                elif problem is not None:  # the one line a damaged store gets
                    log.warning("view store %s %s: decoding its %d images again", paths["images"], problem,
                                len(split))
                if problem is not None:
                    self._build(split, paths)
            finally:
                if locked:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        return StoredSplit(split, paths["images"], paths["masks"] if split.masks else None)

    def _problem(self, paths: dict[str, Path], count: int, masks: bool) -> str | None:
        """None when the store is complete and matches its checksums; else what is wrong ('missing' when unbuilt)."""
        if not paths["manifest"].is_file():
            return "missing"
        try:
            manifest = json.loads(paths["manifest"].read_text())
            files: dict[str, Any] = manifest["files"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return "has an unreadable manifest"
        if manifest.get("count") != count or set(files) != ({"images", "masks"} if masks else {"images"}):
            return "does not hold this split"
        for kind, checksum in files.items():
            if not paths[kind].is_file():
                return f"lacks its {kind} file"
            if sha256_of_file(paths[kind]) != checksum:
                return f"does not match its checksum ({kind})"
        return None

    def _build(self, split, paths: dict[str, Path]) -> None:
        paths["manifest"].unlink(missing_ok=True)  # the store is unfinished until its manifest is back
        count, side = len(split), int(split.view.size)
        loader = DataLoader(split, batch_size=self.batch_size, num_workers=self.num_workers)
        mask_parts: list[np.ndarray] = []

        def write_images(handle) -> None:
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                      "shape": (count, 3, side, side)}
            np.lib.format.write_array_header_1_0(handle, header)
            for batch in loader:
                handle.write(np.ascontiguousarray(batch["image"].numpy()).tobytes())
                if split.masks:
                    mask_parts.append(batch["mask"].numpy().astype(np.uint8))
                self.decoded += len(batch["image"])

        files = {"images": atomic_write(paths["images"], write_images)}
        if split.masks:
            masks = np.concatenate(mask_parts)
            files["masks"] = atomic_write(paths["masks"], lambda handle: np.lib.format.write_array(handle, masks))
        manifest = {"version": STORE_VERSION, "count": count, "view": [side, split.view.resize, split.view.squash],
                    "files": files}
        atomic_write_text(paths["manifest"], json.dumps(manifest, indent=2))


def lock_file(handle) -> bool:
    """Take an exclusive lock on an open file; False where the file system has no locks (e.g. Lustre mounted
    without ``flock``): then processes may build the same store side by side, each file written atomically with the
    same content, which costs time but no correctness."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
    except OSError as error:
        log.warning("view store: cannot lock %s (%s): processes may build the same store side by side",
                    handle.name, error)
        return False
    return True


def store_bytes(count: int, side: int, masks: bool) -> int:
    """Disk bytes of a stored split of ``count`` images at ``side`` x ``side`` (RGB uint8, and 1 byte a mask pixel)."""
    return count * side * side * (3 + (1 if masks else 0))
