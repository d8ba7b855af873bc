"""Shared plumbing of the benchmark scripts: argument parsing, alternating timed runs, the ratio line, JSON output.

Every script measures a ratio inside one process run (or alternating child runs) so that a noisy, shared CPU
moves both sides alike; repetitions alternate which side runs first and the ratio uses medians.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # scripts run as `python benchmarks/bench_x.py` from anywhere
    sys.path.insert(0, str(REPO_ROOT))

PROGRESS_LINE = re.compile(r"^(?:\d\d:\d\d:\d\d )?\[genbias\] generation (\d+)/(\d+) - (.*)$")


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test (numbers mean nothing)")
    parser.add_argument("--json", metavar="PATH", help="append one JSON line of the results to PATH")
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions per side (default per script)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's; 1 is far steadier on a shared CPU)")
    return parser


def apply_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def alternate(sides: dict[str, Callable[[], float]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run every side ``warmup + repeats`` times, rotating which one goes first; return the timed samples.

    Each callable returns the seconds it measured (so it can leave its own setup out of the timing).
    """
    names = list(sides)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(warmup + repeats):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            seconds = sides[name]()
            if rep >= warmup:
                samples[name].append(seconds)
    return samples


def paired_ratio(samples: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """Median over repetitions of numerator_i / denominator_i: the two runs of one repetition are adjacent in time,
    so a shared machine's slow load swings cancel better than in a ratio of medians."""
    return median([a / b for a, b in zip(samples[numerator], samples[denominator])])


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def report(name: str, results: dict, json_path: str | None) -> None:
    """Print one ``RATIO`` line per ratio (what the smoke test and BENCHMARKS.md read) and write the JSON line."""
    for ratio in results["ratios"]:
        verdict = "met" if ratio["met"] else "NOT met"
        print(f"RATIO {name}/{ratio['name']} = {ratio['value']:.3f} (target {ratio['target']}) {verdict}", flush=True)
    results = {"benchmark": name, "unix_time": round(time.time(), 1), **results}
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        with open(json_path, "a") as handle:
            handle.write(json.dumps(results) + "\n")


def ratio_entry(name: str, value: float, target: str) -> dict:
    """``target`` is '<= x', '>= x' or '< x'."""
    op, bound = target.split()
    limit = float(bound.rstrip("%")) / (100 if bound.endswith("%") else 1)
    met = {"<=": value <= limit, ">=": value >= limit, "<": value < limit, ">": value > limit}[op]
    return {"name": name, "value": round(value, 4), "target": target, "met": bool(met)}


def run_child(command: list[str], cwd: Path = REPO_ROOT, echo: bool = False,
              env: dict | None = None) -> tuple[int, float, int, list[tuple[float, str]]]:
    """Run a child process; return (exit code, wall seconds, peak RSS in bytes of that child, timestamped lines).

    ``os.wait4`` reports the rusage of this one child (and its reaped descendants), not of every child this
    process ever had, so earlier children do not leak into the peak.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})}, bufsize=1)
    lines: list[tuple[float, str]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.perf_counter() - start, line.rstrip("\n")))
        if echo:
            print(line, end="", flush=True)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    return proc.returncode, wall, maxrss_bytes(usage.ru_maxrss), lines


def maxrss_bytes(ru_maxrss: int) -> int:
    """ru_maxrss is KiB on Linux, bytes on macOS."""
    return int(ru_maxrss) if sys.platform == "darwin" else int(ru_maxrss) * 1024


def generation_times(lines: list[tuple[float, str]], end_time: float) -> dict[int, float]:
    """Seconds per generation: from its first ``[genbias] generation g/M`` line to the next generation's first line
    (the last generation ends at ``end_time``)."""
    starts: dict[int, float] = {}
    for t, line in lines:
        match = PROGRESS_LINE.match(line)
        if match:
            starts.setdefault(int(match.group(1)), t)
    order = sorted(starts)
    return {g: (starts[order[i + 1]] if i + 1 < len(order) else end_time) - starts[g] for i, g in enumerate(order)}


def stage_spans(lines: list[tuple[float, str]], end_time: float) -> list[tuple[int, str, float]]:
    """(generation, progress message, seconds until the next progress line) for every progress line."""
    marks = [(t, PROGRESS_LINE.match(line)) for t, line in lines]
    marks = [(t, m) for t, m in marks if m]
    out = []
    for i, (t, match) in enumerate(marks):
        nxt = marks[i + 1][0] if i + 1 < len(marks) else end_time
        out.append((int(match.group(1)), match.group(3), nxt - t))
    return out


def machine_facts() -> dict:
    import platform

    import torch

    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((ln.split(":", 1)[1].strip() for ln in handle if ln.startswith("model name")), model)
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}
