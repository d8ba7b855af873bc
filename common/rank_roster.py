"""Which process is which rank, so that a launch whose rank died can say which one.

When a rank of a multi-process launch dies in the middle of a stage, the others fail in their next collective with
the backend's error (gloo: "Connection reset by peer"), which names an address, not a rank. Every stage's Trainer
records the ranks' (host, pid) once its process group exists (``callbacks.rank_roster.RankRoster``); when a stage
fails with a lost-peer error, ``rank_lost`` turns it into one ``RankLost`` naming the ranks whose process is gone.

Lightning's own launcher (ranks started as rank 0's children) also watches its children and SIGKILLs the whole
launch a few seconds after one dies, printing its own line; once ``rank_lost`` has named the rank, that watcher is
told to stand down so the launch ends with this one line and releases its run lock.
"""

from __future__ import annotations

import os
import socket
import threading

import torch.distributed as dist

from common.errors import RankLost

#: rank -> (host, pid) of the current launch's ranks, as the last stage's process group reported them
ROSTER: dict[int, tuple[str, int]] = {}

# what a collective raises when a peer process went away (gloo's TCP transport, NCCL's abort)
LOST_PEER_MESSAGES = ("Connection reset by peer", "Connection closed by peer", "Broken pipe", "Socket Timeout",
                      "NCCL communicator was aborted", "ProcessGroupNCCL")


def record_roster() -> None:
    """Gather every rank's (host, pid) (a collective: every rank of the process group calls it)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, (socket.gethostname(), os.getpid()))
    ROSTER.clear()
    ROSTER.update({rank: (str(host), int(pid)) for rank, (host, pid) in enumerate(gathered)})


def is_lost_peer(error: BaseException) -> bool:
    """Whether ``error`` is a collective failing because another rank went away (only in a multi-rank launch)."""
    if not ROSTER:
        return False
    if isinstance(error, getattr(dist, "DistNetworkError", ())):
        return True
    return isinstance(error, RuntimeError) and any(text in str(error) for text in LOST_PEER_MESSAGES)


def _process_gone(pid: int) -> bool:
    """A pid on this host that no longer runs: gone, or a zombie its parent has not reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def lost_ranks() -> list[str]:
    """'rank r (pid p)' for every rank on this host whose process is gone."""
    host = socket.gethostname()
    return [f"rank {rank} (pid {pid})" for rank, (where, pid) in sorted(ROSTER.items())
            if where == host and pid != os.getpid() and _process_gone(pid)]


def stand_down_lightning_watcher() -> None:
    """Stop Lightning's child-process observer from SIGKILLing this launch (it would a few seconds after a child
    died, before the run lock is released); a no-op without one."""
    for thread in threading.enumerate():
        if thread.name == "child-process-observer" and hasattr(thread, "_run"):
            thread._run = lambda: True  # its loop stops at its next poll, having killed nothing


def rank_lost(error: BaseException, stage: str) -> RankLost | None:
    """The one-line ``RankLost`` for a stage that failed because another rank stopped, else None."""
    if not is_lost_peer(error):
        return None
    stand_down_lightning_watcher()
    gone = lost_ranks()
    who = (", ".join(gone) + (" has" if len(gone) == 1 else " have") + " stopped") if gone else \
        "another rank of this launch stopped (on another host, or its process could not be found)"
    message = str(error)
    reason = next((text for text in LOST_PEER_MESSAGES if text in message), type(error).__name__)
    return RankLost(f"{who} during stage {stage} (this rank's collective failed: {reason}); every completed stage "
                    "is kept: re-run the same command to resume")
