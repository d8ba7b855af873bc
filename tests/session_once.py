"""A folder built once per test session and shared by every pytest-xdist worker (a finished run many tests read)."""

from __future__ import annotations

import fcntl
import os
import shutil
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest


def once_per_session(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder ``build(folder)`` makes, built once per test session and shared by every xdist worker: the first
    worker to ask builds it under a file lock, the others wait and reuse it. A failed build is reported again to
    every test that asks for it. Treat the folder as read-only: copy it before changing anything."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder; each worker's own is popen-gw<N> below it
    folder, failed = root / f"shared_{name}", root / f"shared_{name}.failed"
    with open(root / f"shared_{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if failed.exists():
            pytest.fail(f"building the shared {name!r} failed earlier in this session:\n{failed.read_text()}")
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            try:
                build(folder)
            except BaseException:
                failed.write_text(traceback.format_exc())
                raise
            (folder / ".built").touch()
    return folder
