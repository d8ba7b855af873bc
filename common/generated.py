"""The records the generation path passes between its parts: a generated batch, the gates' per-sample scores of a
block, and the generated block on disk.

* ``GeneratedBatch``: what the generator's ``predict_step`` returns and what every gate, the shard writer and the
  push read: sample ids (int64), requested labels (int64) and uint8 images (B, C, H, W).
* ``BlockScores``: the gates' per-sample results of a whole block in id order (requested label, the reference
  classifier's class, the oracle's subgroup, each automatic filter's score), saved as ``block_scores.safetensors``.
* ``GeneratedBlock``: the raw block as the generation stage leaves it: chunk files, each one generated batch
  (``chunk_<first id>_<end id>.safetensors``, written atomically with a SHA-256 of its tensors in its metadata),
  tiling ids 0..size-1, read back a chunk at a time, so no reader ever holds the block in memory.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from common.io import atomic_write_bytes

CHUNK_PATTERN = "chunk_*.safetensors"
_CHUNK_NAME = re.compile(r"^chunk_(\d{10})_(\d{10})\.safetensors$")
#: key prefix of the filters' scores in ``block_scores.safetensors``
SCORE_PREFIX = "score/"


@dataclass(frozen=True)
class GeneratedBatch:
    """Generated samples: ``ids`` and ``labels`` int64 (B,), ``images`` uint8 (B, C, H, W), on the CPU."""

    ids: torch.Tensor
    labels: torch.Tensor
    images: torch.Tensor

    @classmethod
    def from_prediction(cls, prediction: Mapping[str, torch.Tensor] | GeneratedBatch) -> GeneratedBatch:
        """The batch a generator's ``predict_step`` returned (``{"index", "label", "image"}``)."""
        if isinstance(prediction, GeneratedBatch):
            return prediction
        return cls(prediction["index"].detach().cpu().long(), prediction["label"].detach().cpu().long(),
                   prediction["image"].detach().cpu())

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, chosen: torch.Tensor) -> GeneratedBatch:
        """The samples at ``chosen`` (a boolean mask or positions), in that order."""
        return GeneratedBatch(self.ids[chosen], self.labels[chosen], self.images[chosen])

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"index": self.ids.contiguous(), "label": self.labels.contiguous(), "image": self.images.contiguous()}

    def digest(self) -> str:
        """SHA-256 of the ids, labels and image bytes (what a chunk file's metadata records)."""
        digest = hashlib.sha256()
        for tensor in self.tensors().values():
            digest.update(tensor.numpy().tobytes())
        return digest.hexdigest()


def concatenate(batches: list[GeneratedBatch]) -> GeneratedBatch:
    return GeneratedBatch(torch.cat([b.ids for b in batches]), torch.cat([b.labels for b in batches]),
                          torch.cat([b.images for b in batches]))


# ---------------------------------------------------------------------------------------------------- chunk files
def chunk_path(directory: str | os.PathLike, start: int, stop: int) -> Path:
    return Path(directory) / f"chunk_{int(start):010d}_{int(stop):010d}.safetensors"


def chunk_range(path: str | os.PathLike) -> tuple[int, int] | None:
    """(first id, end id) a chunk file's name says it holds; None for a file that is not a chunk."""
    match = _CHUNK_NAME.match(Path(path).name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def write_chunk(directory: str | os.PathLike, batch: GeneratedBatch) -> Path:
    """Write one batch of consecutive ids as a chunk file, atomically, its checksum in the file's metadata."""
    start, stop = int(batch.ids[0]), int(batch.ids[-1]) + 1
    if not torch.equal(batch.ids, torch.arange(start, stop)):
        raise ValueError(f"a chunk holds consecutive ids, got {batch.ids.tolist()[:8]}...")
    path = chunk_path(directory, start, stop)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, save(batch.tensors(), metadata={"sha256": batch.digest()}))
    return path


def read_chunk(path: str | os.PathLike) -> GeneratedBatch:
    tensors = load_file(str(path))
    return GeneratedBatch(tensors["index"].long(), tensors["label"].long(), tensors["image"])


def chunk_is_complete(path: str | os.PathLike) -> bool:
    """Whether a chunk file holds the ids its name says and the tensors its checksum was taken of."""
    expected = chunk_range(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            recorded = (handle.metadata() or {}).get("sha256")
        batch = read_chunk(path)
    except (OSError, SafetensorError, KeyError, ValueError):
        return False
    return (expected is not None and recorded == batch.digest() and torch.equal(batch.ids, torch.arange(*expected))
            and len(batch.labels) == len(batch.images) == len(batch))


# ---------------------------------------------------------------------------------------------------- block scores
@dataclass
class BlockScores:
    """The gates' per-sample results of a block, in id order."""

    labels: torch.Tensor  # the requested class
    predicted: torch.Tensor  # the generation-0 reference classifier's class (q_t)
    groups: torch.Tensor  # the subgroup oracle's reading, -1 where there is none (u_t)
    filter_scores: dict[str, torch.Tensor] = field(default_factory=dict)  # each automatic filter's score

    def save(self, path: str | os.PathLike) -> None:
        tensors = {"label": self.labels, "predicted": self.predicted, "group": self.groups,
                   **{SCORE_PREFIX + name: score for name, score in self.filter_scores.items()}}
        atomic_write_bytes(path, save({k: v.contiguous() for k, v in tensors.items()}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> BlockScores:
        saved = load_file(str(path))
        scores = {k.removeprefix(SCORE_PREFIX): v for k, v in saved.items() if k.startswith(SCORE_PREFIX)}
        return cls(saved["label"], saved["predicted"], saved["group"], scores)


# ---------------------------------------------------------------------------------------------------- the block
class GeneratedBlock:
    """The raw generated block: chunk files in ``chunk_dir`` tiling ids 0..size-1, and its ``BlockScores``."""

    def __init__(self, chunk_dir: str | os.PathLike, size: int, scores_path: str | os.PathLike | None = None) -> None:
        self.chunk_dir, self.size = Path(chunk_dir), int(size)
        self.scores_path = None if scores_path is None else Path(scores_path)

    @property
    def scores(self) -> BlockScores:
        if self.scores_path is None:
            raise RuntimeError(f"the block in {self.chunk_dir} was opened without its scores")
        return BlockScores.load(self.scores_path)

    def chunks(self) -> list[tuple[int, int, Path]]:
        """(first id, end id, path) of every chunk in id order; RuntimeError unless they cover 0..size-1 once."""
        found = sorted((*r, p) for p in self.chunk_dir.glob(CHUNK_PATTERN) if (r := chunk_range(p)) is not None)
        position = 0
        for start, stop, _ in found:
            if start != position or stop <= start:
                break
            position = stop
        if not found or position != self.size or found[-1][1] != self.size:
            raise RuntimeError(f"the generated chunks in {self.chunk_dir} do not cover samples 0..{self.size - 1} "
                               "exactly once")
        return found

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the block's images, read from the first chunk's header."""
        with safe_open(str(self.chunks()[0][2]), framework="pt") as handle:
            return tuple(handle.get_slice("image").get_shape()[1:])

    def batches(self) -> Iterator[GeneratedBatch]:
        """Every sample, a chunk at a time, in id order."""
        for _, _, path in self.chunks():
            yield read_chunk(path)

    def read(self, ids: torch.Tensor) -> Iterator[GeneratedBatch]:
        """The samples ``ids`` (sorted, unique), a chunk at a time; chunks holding none of them are not read."""
        ids = ids.long()
        for start, stop, path in self.chunks():
            wanted = ids[(ids >= start) & (ids < stop)]
            if len(wanted):
                yield read_chunk(path).subset(wanted - start)

    def kept(self, keep: torch.Tensor) -> Iterator[GeneratedBatch]:
        """The samples a boolean mask over ids keeps, a chunk at a time, in id order."""
        return self.read(torch.nonzero(keep).flatten())

    def rebatched(self, ids: torch.Tensor, batch_size: int) -> Iterator[GeneratedBatch]:
        """The samples ``ids`` (sorted, unique) in batches of ``batch_size`` (the last one shorter), whatever the
        chunks: the batches a consumer would cut from the ids held in memory, read a chunk at a time."""
        pending: list[GeneratedBatch] = []
        for part in self.read(ids):
            pending.append(part)
            while sum(map(len, pending)) >= batch_size:
                merged = concatenate(pending)
                yield merged.subset(slice(0, batch_size))
                pending = [merged.subset(slice(batch_size, None))]
        if sum(map(len, pending)):
            yield concatenate(pending)
