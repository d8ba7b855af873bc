"""A stage that fails because another rank died is told apart from any other failure and names the dead rank."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest

from common import rank_roster
from common.errors import RankLost

GLOO_LOST = RuntimeError("[../gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:37811: Connection reset by "
                         "peer. This is typically caused by a remote worker hanging or bugs in the application.")


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def roster(monkeypatch):
    host = socket.gethostname()
    table = {0: (host, os.getpid()), 1: (host, dead_pid()), 2: ("another-node", 4242)}
    monkeypatch.setattr(rank_roster, "ROSTER", table)
    return table


def test_a_lost_peer_is_named_with_its_rank_pid_and_stage(roster):
    lost = rank_roster.rank_lost(GLOO_LOST, "g1/generator")
    assert isinstance(lost, RankLost)
    assert str(lost) == (f"rank 1 (pid {roster[1][1]}) has stopped during stage g1/generator (this rank's collective "
                         "failed: Connection reset by peer); every completed stage is kept: re-run the same command "
                         "to resume")


def test_a_live_rank_and_a_rank_on_another_host_are_not_called_dead(roster, monkeypatch):
    monkeypatch.setitem(roster, 1, (socket.gethostname(), os.getppid()))  # alive: this test's parent
    lost = rank_roster.rank_lost(GLOO_LOST, "g2/classifier/lenet")
    assert str(lost).startswith("another rank of this launch stopped (on another host, or its process could not be "
                                "found) during stage g2/classifier/lenet")


def test_other_failures_are_left_alone(roster, monkeypatch):
    assert rank_roster.rank_lost(ValueError("Connection reset by peer"), "g1/generator") is None  # not a collective
    assert rank_roster.rank_lost(RuntimeError("CUDA out of memory"), "g1/generator") is None
    monkeypatch.setattr(rank_roster, "ROSTER", {})  # one process: no peer to lose
    assert rank_roster.rank_lost(GLOO_LOST, "g1/generator") is None


def test_a_zombie_or_missing_process_is_gone_a_running_one_is_not():
    assert rank_roster._process_gone(dead_pid())
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    assert rank_roster._process_gone(zombie.pid)
    zombie.wait()
    assert not rank_roster._process_gone(os.getpid())


def test_lightnings_child_watcher_is_told_to_stand_down():
    poll = threading.Event()
    killed = []

    class Observer(threading.Thread):  # the shape of lightning's _ChildProcessObserver: sleep, then self._run()
        def run(self) -> None:
            poll.wait(5)
            self._run()

        def _run(self) -> bool:
            killed.append(True)  # lightning's would SIGKILL the launch here
            return True

    observer = Observer(name="child-process-observer", daemon=True)
    observer.start()
    rank_roster.stand_down_lightning_watcher()
    poll.set()
    observer.join(timeout=5)
    assert killed == []


def test_lightnings_watcher_still_has_the_shape_the_stand_down_relies_on():
    from lightning.fabric.strategies.launchers.subprocess_script import _ChildProcessObserver

    observer = _ChildProcessObserver(main_pid=os.getpid(), child_processes=[])
    assert observer.name == "child-process-observer" and callable(observer._run)
