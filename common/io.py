"""One way to write a file: a temporary file in the same folder, fsync, rename. A crash never leaves half a file.

Readers therefore see either the old content or the new, never a truncated mix; the rename is made durable by
an fsync of the folder where the platform allows it. The file gets the mode any plain ``open(path, "w")`` would
give it, ``0o666 & ~umask`` (``mkstemp`` alone makes it private, ``0o600``), so colleagues, a TensorBoard server or a
report run by another account on a shared file system read a run as the umask allows.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from common.errors import DiskFullError

TEMP_PREFIX = ".tmp-"
_CHUNK_BYTES = 8 * 1024 * 1024


def sha256_of_file(path: str | os.PathLike) -> str:
    """Checksum read in chunks, so verifying a multi-GB file never holds it in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class _HashingWriter:
    """File wrapper that hashes what passes through, so a checksum needs no second read of the file."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.handle.write(data)


def current_umask() -> int:
    """The process's umask, read from ``/proc/self/status`` on Linux without changing it (setting it to read it
    back, the portable way, races with threads creating files); elsewhere set and restored at once."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def shared_file_mode() -> int:
    """The mode a new file gets from ``open(path, "w")``: read and write for everyone the umask lets through."""
    return 0o666 & ~current_umask()


def fsync_directory(directory: str | os.PathLike) -> None:
    """Make a rename durable; some platforms cannot open directories, which only weakens durability."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None]) -> str:
    """Write ``path`` through ``write(handle)`` into a temp file in the same folder, fsync, rename; return SHA-256.

    A full disk raises ``DiskFullError`` naming the file; the temp file is removed and ``path`` keeps its old content.
    """
    path = Path(path)
    try:
        fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=path.parent)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise DiskFullError(path) from error
        raise
    try:
        with os.fdopen(fd, "wb") as handle:
            try:
                os.fchmod(handle.fileno(), shared_file_mode())  # mkstemp makes the file 0o600 whatever the umask
            except OSError:  # best effort: vfat, SMB and FUSE mounts refuse chmod (EPERM); the file keeps their mode
                pass
            writer = _HashingWriter(handle)
            write(writer)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException as error:
        Path(temp_name).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            raise DiskFullError(path) from error
        raise
    fsync_directory(path.parent)
    return writer.digest.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> str:
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> str:
    return atomic_write_bytes(path, text.encode())


def atomic_save_image(image, path: str | os.PathLike) -> None:
    """Save a PIL image as PNG atomically (a full disk leaves no 0-byte PNG behind)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
