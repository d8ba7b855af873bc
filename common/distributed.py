"""Rank helpers that work before and after Lightning has set up the process group."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable

import torch
import torch.distributed as dist

from common.errors import RankZeroGone


def global_rank() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    # Lightning's rank (from the launcher's environment, set by its strategies), imported on first use: a command
    # that never asks (the report) starts without Lightning
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def is_rank_zero() -> bool:
    return global_rank() == 0


def rank_and_world_size() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_objects(value):
    """Every rank's ``value`` in rank order (a list of one outside a process group). A collective: call on all ranks.

    For small per-sample results (ids, scores, predicted classes) of a rank's share of a generated block.
    """
    if not process_group_ready():
        return [value]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def process_group_ready() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_by_index(ids: torch.Tensor, values: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Concatenate every rank's per-sample ``values`` (CPU tensors aligned with ``ids``) and order them by id.

    A collective (call on every rank); every rank gets the same result, as if one process had seen every sample.
    """
    parts = gather_objects((ids.cpu(), {k: v.cpu() for k, v in values.items()}))
    all_ids = torch.cat([part[0] for part in parts])
    order = torch.argsort(all_ids)
    merged = {key: torch.cat([part[1][key] for part in parts])[order] for key in values}
    return all_ids[order], merged


def wait_until(ready: Callable[[], bool], what: str, rank_zero_gone: Callable[[], str | None] | None = None,
               poll_s: float = 0.5) -> None:
    """Poll ``ready`` for as long as rank 0 is alive; RankZeroGone when ``rank_zero_gone`` gives a reason it is not.

    ``rank_zero_gone`` (None while rank 0 shows it is alive: the run lock's heartbeat, ``run_lock.RankZeroWatch``)
    replaces a fixed timeout, so a rank waits through hours of legitimate rank-0 work (a stack rebuild over tens of
    GB) and still stops soon after rank 0 died. ``ready`` is asked once more before giving up: rank 0 may have
    finished and released its lock between two polls.
    """
    while not ready():
        reason = rank_zero_gone() if rank_zero_gone is not None else None
        if reason is not None:
            if ready():
                return
            raise RankZeroGone(f"rank {global_rank()} stopped waiting for rank 0 to {what}: {reason}; re-run the "
                               "same command to resume after the last completed stage")
        time.sleep(poll_s)


def barrier() -> None:
    """Synchronise ranks between stages (a no-op in a single process or before the process group exists)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def launch_id() -> str:
    """An id shared by every rank of this launch (and different for the next one: a requeue, a re-run).

    SLURM and torchrun provide one; for Lightning's own launcher rank 0 makes one before the first Trainer and
    the ranks it starts inherit it through the environment.
    """
    if os.environ.get("GENBIAS_LAUNCH_ID"):
        return os.environ["GENBIAS_LAUNCH_ID"]
    if os.environ.get("SLURM_JOB_ID"):
        value = f"slurm-{os.environ['SLURM_JOB_ID']}.{os.environ.get('SLURM_RESTART_COUNT', '0')}"
    elif os.environ.get("TORCHELASTIC_RUN_ID"):
        value = f"torchrun-{os.environ['TORCHELASTIC_RUN_ID']}.{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    else:
        value = f"local-{uuid.uuid4().hex}"
    os.environ["GENBIAS_LAUNCH_ID"] = value
    return value


def exit_when_orphaned(poll_s: float = 2.0) -> None:
    """On a non-zero rank: exit as soon as the process that started this one is gone.

    When rank 0 (Lightning's launcher starts the other ranks as its children) is killed, its children would sleep
    between stages or block in a collective for many minutes, holding sockets and devices. A daemon thread notices
    that this process was re-parented and exits. (srun and torchrun stop the other tasks themselves.)
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                print(f"[genbias] rank {global_rank()}: the process that started it ({parent}) is gone; exiting",
                      file=sys.stderr, flush=True)
                os._exit(1)

    threading.Thread(target=watch, name="genbias-orphan-watchdog", daemon=True).start()
