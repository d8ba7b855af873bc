"""The exceptions a user can fix, so the CLI can print each as one clean line (exit code 2, no traceback)."""

from __future__ import annotations

import os
import shutil


class ConfigError(ValueError):
    """Raised when the configuration, the inputs it names or the run directory are not usable.

    The message says what is wrong and how to fix it; the CLI prints it without a traceback. Raised before any work
    wherever the problem can be seen that early.
    """


class DiskFullError(ConfigError):
    """The disk filled up while a file was written; the file was not created (writes are atomic)."""

    def __init__(self, path: str | os.PathLike) -> None:
        folder = os.path.dirname(os.path.abspath(path))
        try:
            free = f"{shutil.disk_usage(folder).free / 2**30:.2f} GiB free"
        except OSError:
            free = "free space unknown"
        super().__init__(f"no space left on the device while writing {path} ({free} in {folder}): free some space "
                         "and re-run the same command; the run resumes after its last completed stage")


class RankZeroGone(RuntimeError):
    """A non-zero rank stopped waiting for rank 0: rank 0's heartbeat stopped, or it never started.

    Not a configuration mistake (the CLI prints it as one line with exit code 1): re-running the same command
    resumes after the last completed stage.
    """


class RankLost(RuntimeError):
    """Another rank of this launch stopped in the middle of a stage (killed, out of memory, its node lost).

    Not a configuration mistake (the CLI prints it as one line with exit code 1, on rank 0): every completed stage is
    recorded, and re-running the same command resumes the interrupted stage from its last checkpoint.
    """


class WorkerLost(RuntimeError):
    """A classifier worker (``loop.classifier_parallelism: devices``) stopped before recording its stages (killed,
    out of memory, an error of its own).

    Not a configuration mistake (the CLI prints it as one line with exit code 1): the classifiers that finished are
    recorded, and re-running the same command trains only the unfinished ones, each from its last checkpoint.
    """
