"""One block of the synthetic stack on disk: a generation's kept samples as ``gen_<g>_images.npy`` (raw uint8
(N, C, H, W), memory-mappable) and ``gen_<g>_labels.npy`` (int64), and the manifest entry that lists both files
with their SHA-256 checksums. ``datamodules.stack.SyntheticStack`` keeps the queue of blocks and reads them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.errors import ConfigError
from common.io import atomic_write, sha256_of_file

#: names the stack owns inside its root; only these are ever deleted as strays
_OWNED_FILE = re.compile(r"^(gen_-?\d+_(images|labels)\.npy|\.tmp-.*)$")


def is_owned_file(name: str) -> bool:
    """Whether a file name in the stack's root is one of its block files (or a temp file of one)."""
    return _OWNED_FILE.match(name) is not None


def block_file_names(generation: int) -> dict[str, str]:
    return {kind: f"gen_{generation:04d}_{kind}.npy" for kind in ("images", "labels")}


def is_block_entry(block: Any) -> bool:
    """Whether a manifest entry has the fields the stack reads (a hand-edited manifest gets a clear error)."""
    try:
        return (
            isinstance(block["generation"], int)
            and isinstance(block["count"], int)
            and len(block["shape"]) == 3
            and all(isinstance(block["files"][kind]["name"], str) for kind in ("images", "labels"))
            and all(isinstance(entry["sha256"], str) for entry in block["files"].values())
        )
    except (KeyError, TypeError):
        return False


def as_numpy(values: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def verify_block(root: Path, block: dict[str, Any], verify: bool) -> np.ndarray:
    """Check every file of a block under ``root`` exists, matches its checksum and shape; return its labels."""
    fix = f"restore the file, or delete {root} to start the stack empty"
    for kind, entry in block["files"].items():
        path = root / entry["name"]
        if not path.is_file():
            raise ConfigError(
                f"synthetic stack file {path} ({kind} of generation {block['generation']}) is missing: {fix}"
            )
        actual = sha256_of_file(path) if verify else entry["sha256"]
        if actual != entry["sha256"]:
            raise ConfigError(
                f"synthetic stack file {path} ({kind} of generation {block['generation']}) is corrupted: "
                f"SHA-256 {actual} does not match the manifest's {entry['sha256']}: {fix}"
            )
    count, shape = int(block["count"]), tuple(block["shape"])
    images_path = root / block["files"]["images"]["name"]
    images = np.load(images_path, mmap_mode="r", allow_pickle=False)
    if images.dtype != np.uint8 or images.shape != (count, *shape):
        raise ConfigError(
            f"synthetic stack file {images_path} holds {images.dtype} {images.shape}, but the manifest says "
            f"uint8 {(count, *shape)}: {fix}"
        )
    labels = np.load(root / block["files"]["labels"]["name"], allow_pickle=False)
    if labels.shape != (count,):
        raise ConfigError(
            f"synthetic stack file {root / block['files']['labels']['name']} holds {labels.shape[0]} "
            f"labels but the manifest says {count}: {fix}"
        )
    return labels.astype(np.int64, copy=False)


Batches = Iterable[tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray]]


def write_block(root: Path, generation: int, batches: Batches, count: int,
                image_shape: tuple[int, ...]) -> tuple[dict[str, Any], np.ndarray]:
    """Write generation ``generation``'s block of ``count`` images of ``image_shape`` from ``batches`` of (uint8
    images, labels) as they come, the images' checksum computed while writing; return its manifest entry and its
    labels. Each file is written atomically; the caller lists the block in the manifest afterwards."""
    names = block_file_names(generation)
    label_parts: list[np.ndarray] = []

    def write_images(handle) -> None:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                  "shape": (count, *image_shape)}
        np.lib.format.write_array_header_1_0(handle, header)
        written = 0
        for batch_images, batch_labels in batches:
            image_array = np.ascontiguousarray(as_numpy(batch_images))
            label_array = as_numpy(batch_labels)
            if image_array.dtype != np.uint8 or tuple(image_array.shape[1:]) != image_shape:
                raise ValueError(f"images must be uint8 (N, {', '.join(map(str, image_shape))}), got "
                                 f"{image_array.dtype} {image_array.shape}")
            if label_array.shape != image_array.shape[:1] or not np.issubdtype(label_array.dtype, np.integer):
                raise ValueError(f"labels must be integers of shape ({len(image_array)},), got "
                                 f"{label_array.dtype} {label_array.shape}")
            written += len(image_array)
            if written > count:
                raise ValueError(f"generation {generation}'s block has more than the {count} samples announced")
            handle.write(image_array.tobytes())
            label_parts.append(label_array.astype(np.int64))
        if written != count:
            raise ValueError(f"generation {generation}'s block has {written} samples, not the {count} announced")

    image_checksum = atomic_write(root / names["images"], write_images)
    files = {"images": {"name": names["images"], "sha256": image_checksum}}
    labels = np.concatenate(label_parts) if label_parts else np.zeros(0, dtype=np.int64)
    checksum = atomic_write(root / names["labels"], lambda handle: np.lib.format.write_array(handle, labels))
    files["labels"] = {"name": names["labels"], "sha256": checksum}
    block = {"generation": generation, "count": count, "shape": list(image_shape), "files": files}
    return block, labels
