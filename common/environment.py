"""Where and with what a stage ran: library versions, CUDA stack, GPUs, process layout, host and code version, the
command line, and the SHA-256 of every external weight file (ImageNet, Inception, CLIP, Stable Diffusion) loaded.

Recorded in ``state.json`` for every stage so that two runs (or a run and its resume) can be compared with
confidence; ``version_changes`` names what differs between two records in the fields that change what is computed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import platform
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import torch

#: distribution name -> key in the record
LIBRARIES = {"torch": "torch", "torchvision": "torchvision", "lightning": "lightning", "torchmetrics": "torchmetrics",
             "timm": "timm", "diffusers": "diffusers", "peft": "peft", "transformers": "transformers",
             "open_clip_torch": "open_clip"}
#: fields whose change can change the numbers (a resume under another one is warned about)
VERSION_KEYS = ("python", *LIBRARIES.values(), "cuda", "cudnn", "driver")
REPO_ROOT = Path(__file__).resolve().parents[1]
#: where the product's code lives: an untracked file there (a new plug-in not yet committed) makes the tree dirty
PRODUCT_PATHS = ("cli.py", "common", "metrics", "filters", "datamodules", "lightning_modules", "callbacks", "records",
                 "simulation", "reporting", "sandbox", "scripts", "configs")
#: path -> (what, size, mtime) of every external weight file this process loaded, in load order
_WEIGHT_FILES: dict[str, tuple[str, int, int]] = {}
_command_line: list[str] | None = None
#: the user:password@ of a URL (``scheme://user:pass@host``)
_URL_CREDENTIALS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s'\"]+@")


def start_launch() -> None:
    """Forget what an earlier launch in this process noted (``cli.main`` can run several times in one process, as the
    tests do): a stage's record names the files of its own launch, not those of a launch before it."""
    global _command_line
    _command_line = None
    _WEIGHT_FILES.clear()


def note_command_line(argv: list[str]) -> None:
    """The command this process runs (``cli.main`` notes ``cli.py ARGS``; without it, ``sys.argv``)."""
    global _command_line
    _command_line = list(argv)


def mask_url_credentials(text: str) -> str:
    """``scheme://user:pass@host`` -> ``scheme://***@host``: state.json and summary.md are readable by everyone
    (umask 022), so a tracking URI's password never reaches them."""
    return _URL_CREDENTIALS.sub(r"\1***@", text)


def command_line() -> str:
    """The command this process runs, with any URL's credentials masked."""
    return mask_url_credentials(shlex.join(_command_line if _command_line is not None else sys.argv))


def note_weight_file(path: str | os.PathLike, what: str) -> None:
    """Record an external weight file as loaded (its SHA-256 is computed once, when a stage's record is made)."""
    resolved = Path(path).resolve()
    if resolved.is_file():
        stat = resolved.stat()
        _WEIGHT_FILES[str(resolved)] = (what, stat.st_size, stat.st_mtime_ns)


@functools.cache
def file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file, cached per (path, size, modification time): a multi-GB checkpoint is read once."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _sha256_if_present(path: str, size: int, mtime_ns: int) -> str | None:
    if not os.path.isfile(path):  # removed since it was loaded (a temporary copy): nothing left to hash
        return None
    try:
        return file_sha256(path, size, mtime_ns)
    except FileNotFoundError:  # removed between the check and the read
        return None


def loaded_weight_files() -> list[dict]:
    """``{what, path, bytes, sha256}`` of every external weight file this process loaded so far (``sha256`` None for
    a file that has been removed since)."""
    return [{"what": what, "path": path, "bytes": size, "sha256": _sha256_if_present(path, size, mtime)}
            for path, (what, size, mtime) in _WEIGHT_FILES.items()]


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _driver_version() -> str | None:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.split()
    return lines[0] if done.returncode == 0 and lines else None


@functools.lru_cache(maxsize=1)
def _static_environment() -> dict:
    """What does not change during a process (asked once: git and nvidia-smi take a few tens of ms)."""
    gpu = torch.cuda.is_available()
    commit = _git("rev-parse", "HEAD")
    changed = _git("status", "--porcelain", "--untracked-files=no")
    untracked = _git("status", "--porcelain", "--untracked-files=all", "--", *PRODUCT_PATHS)
    dirty = None if changed is None or untracked is None else changed + untracked
    return {
        "python": platform.python_version(),
        **{key: _version(dist) for dist, key in LIBRARIES.items()},
        "torch": str(torch.__version__),  # with its build, e.g. 2.6.0+cu124
        "cuda": torch.version.cuda if gpu else None,
        "cudnn": str(torch.backends.cudnn.version()) if gpu and torch.backends.cudnn.is_available() else None,
        "driver": _driver_version() if gpu else None,
        "gpu_names": sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}) if gpu else None,
        "gpu_count": torch.cuda.device_count() if gpu else None,
        "hostname": socket.gethostname(),
        "git_commit": commit,
        "git_dirty": None if commit is None or dirty is None else bool(dirty),
    }


def collect_environment(num_nodes: int | None = None) -> dict:
    """This process's environment as plain JSON values (None where it does not apply, e.g. CUDA on a CPU)."""
    world_size = torch.distributed.get_world_size() if torch.distributed.is_available() and \
        torch.distributed.is_initialized() else int(os.environ.get("WORLD_SIZE", 1))
    slurm_job = os.environ.get("SLURM_JOB_ID")
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        slurm_job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    nodes = os.environ.get("SLURM_NNODES")
    return {
        **_static_environment(),
        "world_size": world_size,
        "nodes": int(nodes) if nodes and nodes.isdigit() else int(num_nodes or 1),
        "omp_threads": torch.get_num_threads(),
        "slurm_job_id": slurm_job,
        "command_line": command_line(),
        "weight_files": loaded_weight_files(),
    }


def version_changes(before: dict, after: dict) -> list[str]:
    """``torch 2.5.1 -> 2.6.0``-style differences in the fields that can change the numbers."""
    return [f"{key} {before.get(key)} -> {after.get(key)}" for key in VERSION_KEYS
            if before.get(key) != after.get(key)]
