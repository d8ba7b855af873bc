"""Shared end-to-end runs: the plain tiny run of tests/configs/tiny_mnist.yaml, made once per session."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.session_once import once_per_session

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "configs" / "tiny_mnist.yaml")


@dataclasses.dataclass(frozen=True)
class FinishedRun:
    """A finished run made by ``cli.py fit`` in a subprocess, with what it printed. Shared by many tests: read it in
    place, ``copy_to`` a folder of the test's own before changing anything (a resume, a fault)."""

    run_dir: Path
    stdout: str
    stderr: str

    def copy_to(self, target: Path) -> Path:
        shutil.copytree(self.run_dir, target)
        (target / ".lock").unlink(missing_ok=True)
        return target


@pytest.fixture(scope="session")
def tiny_reference_run(tmp_path_factory) -> FinishedRun:
    """``cli.py fit --config tests/configs/tiny_mnist.yaml`` with no other option (2 generations, a stack of 1), as a
    user runs it: the reference that the fault and regime tests compare with and the CLI tests read."""

    def build(folder: Path) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "fit", "--config", TINY, "--loop.run_dir",
                               str(folder / "run")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        (folder / "stdout.txt").write_text(proc.stdout)
        (folder / "stderr.txt").write_text(proc.stderr)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    folder = once_per_session(tmp_path_factory, "tiny_reference_run", build)
    return FinishedRun(folder / "run", (folder / "stdout.txt").read_text(), (folder / "stderr.txt").read_text())
