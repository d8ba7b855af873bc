"""A non-zero rank waits for rank 0 as long as rank 0's lock heartbeat moves, and stops with one line once it does
not: no fixed timeout. The timeouts are made small here; the real ones are seconds to minutes."""

from __future__ import annotations

import json
import threading
import time

import pytest

from common.distributed import wait_until
from common.errors import RankZeroGone
from records.run_directory import RunDirectory
from records.state import StageKey
from simulation.run_lock import RankZeroWatch, RunLock


def write_state_later(state_path, state: dict, after_s: float) -> threading.Thread:
    def write() -> None:
        time.sleep(after_s)
        state_path.write_text(json.dumps(state))

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_a_waiting_rank_waits_past_its_start_limit_while_the_heartbeat_is_fresh(tmp_path):
    lock = RunLock(tmp_path / ".lock", "launch-a", heartbeat_s=0.05)
    lock.acquire()
    try:
        watch = RankZeroWatch(lock.path, "launch-a", stale_after_s=0.5, start_within_s=0.2)
        # rank 0 needs 5x the start limit and 3x the staleness limit: a fixed timeout of either would have failed
        write_state_later(tmp_path / "state.json", {"config_fingerprint": "f", "launch_id": "launch-a"}, 1.5)
        RunDirectory(tmp_path).wait_for_launch("f", "launch-a", watch)
        assert watch() is None
    finally:
        lock.release()


def test_a_waiting_rank_stops_with_one_line_when_the_heartbeat_stops(tmp_path):
    lock = RunLock(tmp_path / ".lock", "launch-a", heartbeat_s=0.05)
    lock.acquire()
    lock._stop.set()  # rank 0 hangs or its host died: the lock stays, its heartbeat stops
    watch = RankZeroWatch(lock.path, "launch-a", stale_after_s=0.3, start_within_s=60)
    with pytest.raises(RankZeroGone) as error:
        RunDirectory(tmp_path).wait_for_stage(StageKey.push(1), watch)
    message = str(error.value)
    assert "stopped waiting for rank 0 to finish stage g1/push" in message and "heartbeat" in message
    assert f"pid {lock._record()['pid']}" in message and "\n" not in message


def test_a_released_lock_or_a_rank_zero_that_never_came_ends_the_wait(tmp_path):
    lock = RunLock(tmp_path / ".lock", "launch-a", heartbeat_s=0.05)
    lock.acquire()
    watch = RankZeroWatch(lock.path, "launch-a", stale_after_s=60, start_within_s=60)
    assert watch() is None
    lock.release()  # rank 0 stopped (an error on rank 0 alone) and released its lock
    assert "released its lock" in watch()
    never = RankZeroWatch(tmp_path / "other.lock", "launch-b", stale_after_s=60, start_within_s=0.2)
    with pytest.raises(RankZeroGone, match="has not taken the lock .* of this launch within 0 s"):
        RunDirectory(tmp_path).wait_for_launch("f", "launch-b", never)


def test_a_stale_lock_of_an_earlier_launch_does_not_end_the_wait(tmp_path):
    (tmp_path / ".lock").write_text(json.dumps({"launch_id": "earlier", "pid": 1, "host": "h"}))
    watch = RankZeroWatch(tmp_path / ".lock", "launch-a", stale_after_s=0.01, start_within_s=60)
    time.sleep(0.05)
    assert watch() is None  # rank 0 of this launch will take it over


def test_the_state_written_as_rank_zero_leaves_is_not_an_error():
    answers = iter([False, True])  # not ready at the poll; rank 0 then records its stage and releases its lock
    wait_until(lambda: next(answers), "finish stage g2/evaluate/lenet", lambda: "it released its lock")
    with pytest.raises(RankZeroGone, match="to finish stage g2/evaluate/lenet: it released its lock; re-run"):
        wait_until(lambda: False, "finish stage g2/evaluate/lenet", lambda: "it released its lock")
