"""Rank helpers that work before and after Lightning has set up the process group."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch.distributed as dist
from lightning.fabric.utilities.rank_zero import rank_zero_only


def global_rank() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(getattr(rank_zero_only, "rank", 0) or 0)


def is_rank_zero() -> bool:
    return global_rank() == 0


def barrier() -> None:
    """Synchronise ranks between stages (a no-op in a single process or before the process group exists)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def wait_for_state(state_path: Path, fingerprint: str, timeout_s: float = 600.0) -> None:
    """Non-zero ranks started by SLURM/torchrun wait for rank 0 to create the run directory."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if json.loads(state_path.read_text()).get("config_fingerprint") == fingerprint:
                return
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"rank {global_rank()} waited {timeout_s:.0f} s for rank 0 to create {state_path}")
