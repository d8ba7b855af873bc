"""Taking over a stale run lock is atomic: two launches that both judge the same lock stale never both hold the run,
and the lock file is never missing or half-written while one takes it over."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys

import pytest

from common.errors import ConfigError
from simulation.run_lock import RunLock


def dead_pid() -> int:
    """The pid of a process that has exited (the holder of a stale lock)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_stale_lock(path, pid: int) -> int:
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "launch_id": "crashed",
                                "started": "2026-01-01 00:00:00"}))
    return os.stat(path).st_ino


def as_live_launch(lock: RunLock, pid: int = 1) -> RunLock:
    """Make ``lock`` write the record of another live process (pid 1 exists on every Linux host)."""
    lock._record = lambda: {"host": socket.gethostname(), "pid": pid, "launch_id": lock.launch_id,
                            "started": "2026-12-07 09:00:00"}
    return lock


def test_a_stale_lock_is_taken_over_and_says_why(tmp_path):
    path = tmp_path / ".lock"
    write_stale_lock(path, dead_pid())
    lock = RunLock(path, "launch-b", heartbeat_s=60)
    try:
        assert lock.acquire().startswith("process ")
        assert json.loads(path.read_text())["launch_id"] == "launch-b"
        assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]  # no marker or private record left behind
    finally:
        lock.release()
    assert not path.exists()


def test_a_launch_that_judged_a_lock_stale_after_another_took_it_over_is_refused(tmp_path, monkeypatch):
    """The race that unlink-then-create loses: B reads the stale lock, A takes it over, then B acts on what it read.
    B must not replace A's fresh lock."""
    path = tmp_path / ".lock"
    stale_pid = dead_pid()
    stale_inode = write_stale_lock(path, stale_pid)
    late = RunLock(path, "launch-b", heartbeat_s=60)
    stale_view = late._read_holder()  # B's read, before A's takeover
    assert stale_view[2] == stale_inode and late.stale_reason(stale_view[0], stale_view[1]) is not None

    first = as_live_launch(RunLock(path, "launch-a", heartbeat_s=60))
    try:
        assert first.acquire() == f"process {stale_pid} is gone"
        reads = iter([stale_view])
        real_read = late._read_holder
        monkeypatch.setattr(late, "_read_holder", lambda: next(reads, None) or real_read())
        with pytest.raises(ConfigError, match="is in use by another launch \\(pid 1 on host"):
            late.acquire()
        assert json.loads(path.read_text())["launch_id"] == "launch-a"  # A still holds the run
        assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]
    finally:
        first._stop.set()


def test_a_takeover_marker_left_by_a_dead_launch_does_not_block_the_run_forever(tmp_path):
    path = tmp_path / ".lock"
    inode = write_stale_lock(path, dead_pid())
    marker = tmp_path / f".lock.takeover-{inode}"
    marker.touch()
    os.utime(marker, (0, 0))  # written long ago by a launch that died while taking over
    lock = RunLock(path, "launch-b", heartbeat_s=60)
    try:
        assert lock.acquire() is not None
        assert json.loads(path.read_text())["launch_id"] == "launch-b"
    finally:
        lock.release()


def contend(path: str, launch: str, start, done, results) -> None:
    lock = RunLock(path, launch, heartbeat_s=60)
    start.wait()
    try:
        lock.acquire()
        results.put((launch, "took"))
    except ConfigError:
        results.put((launch, "refused"))
    done.wait()  # hold (or not) until every contender has tried: a winner that exits would leave a stale lock
    lock._stop.set()


@pytest.mark.parametrize("round_", range(3))
def test_of_launches_racing_for_one_stale_lock_exactly_one_takes_it(tmp_path, round_):
    path = tmp_path / ".lock"
    write_stale_lock(path, dead_pid())
    context = multiprocessing.get_context("fork")
    start, done, results = context.Barrier(6), context.Barrier(6), context.Queue()
    procs = [context.Process(target=contend, args=(str(path), f"launch-{i}", start, done, results))
             for i in range(6)]
    for proc in procs:
        proc.start()
    outcomes = dict(results.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    winners = [launch for launch, outcome in outcomes.items() if outcome == "took"]
    assert len(winners) == 1, outcomes
    assert json.loads(path.read_text())["launch_id"] == winners[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]


def test_on_a_file_system_without_hard_links_the_lock_is_still_exclusive(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / ".lock"
    first = as_live_launch(RunLock(path, "launch-a", heartbeat_s=60))
    try:
        assert first.acquire() is None
        assert json.loads(path.read_text())["launch_id"] == "launch-a"
        with pytest.raises(ConfigError, match="is in use by another launch"):
            RunLock(path, "launch-b", heartbeat_s=60).acquire()
    finally:
        first._stop.set()
