"""Checksummed chunk files of one tensor each: written once, verified, then read through a memory map.

The run's caches (Stable Diffusion's latents, the classifiers' decoded views) hold one float or uint8 row per image,
split into chunks of a fixed number of rows so that a build killed half-way keeps its finished chunks and DDP ranks
build disjoint chunks side by side. A chunk is a ``.safetensors`` file holding the tensor ``rows`` (readable with
``safetensors.torch.load_file``) and a ``.sha256`` file beside it with its checksum; both are written atomically, the
checksum last, so a chunk without its checksum file is unfinished and is built again. Reading maps the file's data
(no copy into RAM), so a cache larger than memory streams like the synthetic stack.
"""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

import numpy as np
import torch

from common.io import atomic_write, atomic_write_text, sha256_of_file

log = logging.getLogger(__name__)

TENSOR_NAME = "rows"
CHECKSUM_SUFFIX = ".sha256"
_DTYPES = {"F32": np.float32, "U8": np.uint8}


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def write_chunk(path: Path, rows: torch.Tensor) -> None:
    """Write ``rows`` (float32 or uint8) as a safetensors file, then its checksum file (both atomically)."""
    from safetensors.torch import save

    data = save({TENSOR_NAME: rows.detach().cpu().contiguous()})
    checksum = atomic_write(path, lambda handle: handle.write(data))
    atomic_write_text(checksum_path(path), checksum + "\n")


def chunk_state(path: Path, verify: bool) -> str:
    """'ok', 'missing' (no file or no checksum file: never finished) or 'corrupted' (checksum differs)."""
    recorded = checksum_path(path)
    if not path.is_file() or not recorded.is_file():
        return "missing"
    if verify and sha256_of_file(path) != recorded.read_text().strip():
        return "corrupted"
    return "ok"


def remove_chunk(path: Path) -> None:
    path.unlink(missing_ok=True)
    checksum_path(path).unlink(missing_ok=True)


def map_chunk(path: Path) -> np.ndarray:
    """The chunk's rows as a read-only memory map (numpy; ``torch.from_numpy`` of a gathered copy reads them)."""
    with open(path, "rb") as handle:
        (header_size,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_size))
    entry = header[TENSOR_NAME]
    begin, end = entry["data_offsets"]
    dtype = np.dtype(_DTYPES[entry["dtype"]])
    shape = tuple(entry["shape"])
    if int(np.prod(shape)) * dtype.itemsize != end - begin:
        raise ValueError(f"{path} is not a chunk file of this tool (its header's shape and size disagree)")
    return np.memmap(path, dtype=dtype, mode="r", offset=8 + header_size + begin, shape=shape)
