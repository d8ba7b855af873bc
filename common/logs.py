"""The tool's own log lines: ``HH:MM:SS [genbias] message`` on standard output, from rank 0 only.

Everything the loop says goes through the ``genbias`` logger, so a user (or a SLURM log) sees when each line was
written, and a library embedding the loop can redirect or silence it with the logging module.
"""

from __future__ import annotations

import logging
import sys

from common.distributed import is_rank_zero

LOGGER_NAME = "genbias"


class _CurrentStdout(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is when a line is logged (it may be replaced after setup, e.g. by pytest)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


class _RankZeroOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return is_rank_zero() or record.levelno >= logging.ERROR


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def setup_logging(level: int = logging.INFO) -> None:
    """Send the ``genbias`` logger's lines to standard output with a timestamp (idempotent)."""
    logger = get_logger()
    if any(getattr(handler, "genbias", False) for handler in logger.handlers):
        return
    handler = _CurrentStdout(sys.stdout)
    handler.genbias = True
    handler.setFormatter(logging.Formatter("%(asctime)s [genbias] %(message)s", datefmt="%H:%M:%S"))
    handler.addFilter(_RankZeroOnly())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 10 s``, ``2 h 05 min``: readable at a glance in a log line."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
