"""One process (one launch) at a time on a run directory.

Rank 0 of a launch holds ``<run_dir>/.lock`` (its host, pid, launch id and start time) for as long as it runs and
refreshes the file's time every ``HEARTBEAT_S``; the other ranks of the launch follow rank 0's state and take no
lock. A second launch on the same run directory is refused with one line, so two processes never run the same
stages, and an overwrite can never delete a live run. A lock left by a process that died is stale and taken over:
its pid is gone (same host), it belongs to an earlier incarnation of the same SLURM job (a requeue), or it has not
been refreshed for ``STALE_AFTER_S`` (a dead host).

The lock file is never missing while a launch takes it over: the launch that wins the takeover of one stale lock (the
first to create ``.lock.takeover-<inode>``, O_EXCL) renames its own record over it, after checking that the file is
still that stale lock. A second launch that judged the same lock stale loses the O_EXCL race or finds another
file in its place, and is refused like any launch that meets a live lock. (Unlinking the stale lock and then
creating one would let that second launch unlink the winner's fresh lock and take the run as well.)

The same heartbeat tells the other ranks of the launch that rank 0 is alive (``RankZeroWatch``): they wait for its
rank-0-only work (creating or resuming the run directory, a stack rebuild, a push) for as long as the heartbeat
goes on, and stop with one line ``WAITER_STALE_S`` after it stopped.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from common.errors import ConfigError

HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0
# A waiting rank gives up when rank 0's heartbeat has not moved for this long (4 missed beats, measured on the
# waiter's own clock, so clock skew between hosts of a shared filesystem does not matter) ...
WAITER_STALE_S = 120.0
# ... or when rank 0 has not taken the lock of this launch this long after the waiter started (it never started)
WAITER_START_S = 600.0
# a takeover marker older than this belongs to a launch that died while taking over (a takeover takes milliseconds)
TAKEOVER_STALE_S = 60.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _mtime(path: Path, default: float) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return default


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _slurm_job(launch: str) -> str | None:
    """``slurm-<job id>`` of a launch id such as ``slurm-1234.2`` (job 1234, restart 2)."""
    return launch.split(".")[0] if launch.startswith("slurm-") else None


class RunLock:
    def __init__(self, path: Path, launch_id: str, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.path = Path(path)
        self.launch_id = launch_id
        self.heartbeat_s = float(heartbeat_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(), "launch_id": self.launch_id,
                "started": time.strftime("%Y-%m-%d %H:%M:%S")}

    def stale_reason(self, holder: dict, age_s: float) -> str | None:
        """Why a lock held by ``holder`` (refreshed ``age_s`` ago) can be taken over, or None when it is live."""
        same_host = holder.get("host") == socket.gethostname()
        if same_host and holder.get("pid") == os.getpid():
            return "held by this process"
        if same_host and not _pid_alive(int(holder.get("pid", -1))):
            return f"process {holder.get('pid')} is gone"
        ours = _slurm_job(self.launch_id)
        if ours is not None and ours == _slurm_job(str(holder.get("launch_id", ""))):
            return "an earlier run of this SLURM job (requeued)"
        if age_s > STALE_AFTER_S:
            return f"not refreshed for {age_s / 60:.0f} minutes"
        return None

    def acquire(self) -> str | None:
        """Take the lock; returns why a stale lock was taken over (None if there was none). ConfigError when live."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if not self._create():
                holder, age, inode = self._read_holder()
                reason = self.stale_reason(holder, age)
                if reason is None:
                    raise self._in_use(holder) from None
                if inode is None:  # it vanished meanwhile: try to create it again
                    continue
                if self._take_over(inode):
                    self._start_heartbeat()
                    return reason
                continue  # another launch took it over first: its fresh lock is read on the next pass
            self._start_heartbeat()
            return None
        holder, _, _ = self._read_holder()
        raise self._in_use(holder)

    def _own_record(self) -> Path:
        """This launch's record, written whole to a private file first, so a lock file is never seen half-written."""
        mine = self.path.with_name(f"{self.path.name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        mine.write_text(json.dumps(self._record()))  # the mode a plain open() gives: as the umask allows
        return mine

    def _create(self) -> bool:
        """Create the lock if there is none (a hard link fails when the name exists): False when one exists."""
        mine = self._own_record()
        try:
            os.link(mine, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: an exclusive create, then the record
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as handle:
                json.dump(self._record(), handle)
            return True
        finally:
            mine.unlink(missing_ok=True)

    def _in_use(self, holder: dict) -> ConfigError:
        return ConfigError(
            f"run directory {self.path.parent} is in use by another launch (pid {holder.get('pid')} on "
            f"host {holder.get('host')}, started {holder.get('started')}): wait for it to finish or stop "
            f"it; if that process no longer exists, delete {self.path} and re-run")

    def _take_over(self, stale_inode: int) -> bool:
        """Replace the stale lock whose inode is ``stale_inode`` by this launch's record, atomically; False when another
        launch won the takeover of that lock (or replaced it before this one looked again)."""
        marker = self.path.with_name(f"{self.path.name}.takeover-{stale_inode}")
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            if time.time() - _mtime(marker, default=time.time()) > TAKEOVER_STALE_S:
                marker.unlink(missing_ok=True)  # a launch died while taking over; the next pass tries again
            return False
        try:
            try:
                if os.stat(self.path).st_ino != stale_inode:
                    return False  # not the lock judged stale any more
            except FileNotFoundError:
                return False
            os.replace(self._own_record(), self.path)
            return True
        finally:
            marker.unlink(missing_ok=True)

    def _read_holder(self) -> tuple[dict, float, int | None]:
        """The lock's record, its age (s since its heartbeat) and inode (None: it vanished)."""
        try:
            inode = os.stat(self.path).st_ino
            holder = json.loads(self.path.read_text())
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return {}, STALE_AFTER_S + 1, None
        except (OSError, json.JSONDecodeError):
            # unreadable or half-written: nobody can be refreshing it
            return {}, STALE_AFTER_S + 1, _inode(self.path)
        return holder, age, inode

    def _start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stop.wait(self.heartbeat_s):
                try:
                    os.utime(self.path)
                except OSError:
                    return

        self._thread = threading.Thread(target=beat, name="genbias-lock-heartbeat", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        try:
            holder = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            return
        if holder.get("launch_id") == self.launch_id and holder.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)


class RankZeroWatch:
    """Called by a waiting non-zero rank: None while rank 0 of ``launch_id`` shows it is alive, else why not.

    Alive means: the lock carries this launch and its heartbeat (the file's time) moved within ``stale_after_s``
    on this process's clock, or rank 0 has not taken the lock yet and ``start_within_s`` has not passed since the
    watch was made (a stale lock of an earlier launch is taken over by rank 0 meanwhile).
    """

    def __init__(self, path: Path, launch_id: str, stale_after_s: float = WAITER_STALE_S,
                 start_within_s: float = WAITER_START_S) -> None:
        self.path, self.launch_id = Path(path), launch_id
        self.stale_after_s, self.start_within_s = float(stale_after_s), float(start_within_s)
        self.started = time.monotonic()
        self._beat: tuple[float, float] | None = None  # (the lock file's time, when this watch saw it change)
        self._holder: dict = {}

    def __call__(self) -> str | None:
        now = time.monotonic()
        try:
            holder = json.loads(self.path.read_text())
            mtime = self.path.stat().st_mtime
        except (OSError, json.JSONDecodeError):
            holder, mtime = {}, None
        if holder.get("launch_id") == self.launch_id and mtime is not None:
            self._holder = holder
            if self._beat is None or self._beat[0] != mtime:
                self._beat = (mtime, now)
            silent = now - self._beat[1]
            if silent > self.stale_after_s:
                return (f"its heartbeat {self.path} has not moved for {silent:.0f} s (rank 0 is pid "
                        f"{holder.get('pid')} on host {holder.get('host')}: it died or hangs)")
            return None
        if self._beat is not None:
            return (f"it released its lock {self.path} (rank 0, pid {self._holder.get('pid')} on host "
                    f"{self._holder.get('host')}, has stopped; its output says why)")
        if now - self.started > self.start_within_s:
            return f"it has not taken the lock {self.path} of this launch within {self.start_within_s:.0f} s"
        return None
