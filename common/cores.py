"""The CPU cores a process may run on, and how they are divided between processes that run at once (a sweep's
jobs, the classifier workers of ``loop.classifier_parallelism: devices``): OpenMP threads of several torch processes
that outnumber the cores spin on shared cores and slow every one of them down several times (BENCHMARKS.md)."""

from __future__ import annotations

import os


def available_cores() -> int:
    """The cores this process may use: its CPU affinity (taskset, cgroups, SLURM's binding), capped by
    ``SLURM_CPUS_PER_TASK`` where SLURM allocated fewer than the affinity shows."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity call
        cores = os.cpu_count() or 1
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        cores = min(cores, int(slurm))
    return max(1, cores)


def threads_per_job(jobs: int, cores: int) -> int:
    """Cores divided between concurrent jobs (at least 1 each)."""
    return max(1, cores // max(1, jobs))
