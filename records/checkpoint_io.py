"""Lightning checkpoints written atomically and read without unpickling anything but tensors and plain data.

Lightning's own writer streams into the final file name, so a full disk or a killed job can leave a truncated
``last.ckpt`` that every later resume trips over. Here a checkpoint is written to a temporary file in the same folder,
fsynced and renamed (``common.io.atomic_write``); a full disk raises ``DiskFullError`` naming the file. Reading
never unpickles arbitrary objects, whatever the installed torch's default.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from common.distributed import is_rank_zero
from common.errors import ConfigError
from common.io import atomic_write_bytes


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None):
        """Tensors and plain data only (``weights_only=True``); a checkpoint that cannot be loaded that way is
        reported with its path and set aside, so that re-running restarts the stage from the previous good one."""
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
            aside = Path(f"{path}.corrupt")
            if is_rank_zero() and Path(path).exists():
                Path(path).rename(aside)
            raise ConfigError(
                f"checkpoint {path} cannot be loaded as tensors and plain data ({type(error).__name__}: "
                f"{str(error).splitlines()[0][:200]}); it was set aside as {aside.name}: re-run the same command to "
                "restart the stage from its previous good checkpoint"
            ) from error


def readable_checkpoint(path: str | Path) -> bool:
    """Whether a checkpoint file is complete: torch writes a zip archive whose directory sits at its end, so a
    truncated file (a full disk, a copy cut short) fails here in milliseconds, whatever the checkpoint's size."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError):
        return False
