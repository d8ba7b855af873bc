"""DataLoader workers that follow a SLURM allocation: ``data.num_workers`` from ``SLURM_CPUS_PER_TASK``.

A config that does not pin ``data.num_workers`` gets one worker per allocated CPU but one (the main process keeps a
core); a config or override that pins more workers than the task has CPUs gets a warning, since its workers would
share cores and slow each other down. Used by ``scripts/slurm/fit.sbatch`` (``python -m common.allocation CONFIG
[overrides ...]`` prints the overrides to add, one per line) and by ``scripts/sweep.py`` for its array tasks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

KEY = "data.num_workers"


def allocated_cpus(env: Mapping[str, str]) -> int | None:
    """The CPUs SLURM gave each task (``--cpus-per-task``), or None outside an allocation that says."""
    value = env.get("SLURM_CPUS_PER_TASK", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def _from_config_file(path: str | os.PathLike) -> int | None:
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return None  # cli.py reports an unreadable config itself, with the parser's message
    data = loaded.get("data") if isinstance(loaded, dict) else None
    value = data.get("num_workers") if isinstance(data, dict) else None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def pinned_workers(config: str | os.PathLike, overrides: Sequence[str]) -> int | None:
    """The ``data.num_workers`` the config file, a later ``--config`` file or a ``--data.num_workers`` override
    sets (the last one wins, as on cli.py's command line), or None when none of them does."""
    pinned = _from_config_file(config)
    args = list(overrides)
    for position, arg in enumerate(args):
        name, _, inline = arg.partition("=")
        value = inline if inline else (args[position + 1] if position + 1 < len(args) else "")
        if name == "--config":
            from_file = _from_config_file(value)
            pinned = pinned if from_file is None else from_file
        elif name == f"--{KEY}" and value.strip().isdigit():
            pinned = int(value)
    return pinned


def workers_for_allocation(config: str | os.PathLike, overrides: Sequence[str],
                           env: Mapping[str, str]) -> tuple[list[str], str | None]:
    """(overrides to add to ``cli.py fit``, a warning or None) for a task with ``env``'s allocation."""
    cpus = allocated_cpus(env)
    if cpus is None:
        return [], None
    pinned = pinned_workers(config, overrides)
    if pinned is None:
        return [f"--{KEY}", str(cpus - 1)], None
    if pinned > cpus:
        return [], (f"warning: {config} asks {KEY}={pinned} but the allocation has {cpus} CPU(s) per task: the "
                    f"workers share cores and slow each other down - submit with --cpus-per-task={pinned + 1} or "
                    f"pass --{KEY} {max(0, cpus - 1)}")
    return [], None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m common.allocation CONFIG [cli.py overrides ...]", file=sys.stderr)
        return 2
    extra, warning = workers_for_allocation(args[0], args[1:], os.environ)
    if warning:
        print(warning, file=sys.stderr)
    for arg in extra:
        print(arg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
