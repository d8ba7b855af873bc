"""Run a sweep file: every (config, overrides, seed) combination in its own run directory.

Sweep file (YAML)::

    configs: [configs/<experiment>.yaml, configs/<other experiment>.yaml]
    seeds: [0, 1, 2]
    overrides:                       # optional: a list of variants, each a dict of dotted CLI overrides
      - {}
      - {data.synthetic_share: 0.0}
    grid:                            # optional: dotted key -> list of values, cartesian product
      loop.generations: [5, 10]
    out: runs/sweeps/<name>

Tasks = configs x override variants x grid points x seeds (in that order, 0-based). Task run directory:
``<out>/<config stem>[__<override slug>]/seed_<seed>``.

    python scripts/sweep.py SWEEP.yaml             run every task sequentially (finished runs are skipped)
    python scripts/sweep.py SWEEP.yaml --jobs 2    run 2 tasks at a time, the cores divided between them
    python scripts/sweep.py SWEEP.yaml --list      print the tasks
    python scripts/sweep.py SWEEP.yaml --count     print the number of tasks (for sbatch --array=0-<count-1>)
    python scripts/sweep.py SWEEP.yaml --task N    run task N only (the SLURM array entry point)
    python scripts/sweep.py SWEEP.yaml --dry-run   print the commands instead of running them
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from common.errors import ConfigError  # noqa: E402

SWEEP_KEYS = {"configs", "seeds", "overrides", "grid", "out"}
MAX_SLUG = 80


@dataclass(frozen=True)
class SweepTask:
    index: int
    config: str
    overrides: tuple[tuple[str, object], ...]
    seed: int
    run_dir: str

    def command(self, python: str = sys.executable) -> list[str]:
        """The `cli.py fit` command line of this task."""
        args = [python, str(REPO_ROOT / "cli.py"), "fit", "--config", self.config]
        for key, value in self.overrides:
            args += [f"--{key}", cli_value(value)]
        return [*args, "--seed_everything", str(self.seed), "--loop.run_dir", self.run_dir]


def cli_value(value: object) -> str:
    """A YAML/JSON value as jsonargparse reads it from the command line."""
    return value if isinstance(value, str) else json.dumps(value)


def override_slug(overrides: tuple[tuple[str, object], ...]) -> str:
    """Readable folder suffix, e.g. ``synthetic_share-0.0_generations-5`` (hashed when too long)."""
    if not overrides:
        return ""
    parts = [f"{key.split('.')[-1]}-{cli_value(value)}" for key, value in overrides]
    slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", "_".join(parts)).strip("_")
    if len(slug) > MAX_SLUG:
        digest = hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8]
        slug = f"{slug[:MAX_SLUG - 9]}_{digest}"
    return slug


def _variants(spec: dict, path: Path) -> list[tuple[tuple[str, object], ...]]:
    overrides = spec.get("overrides") or [{}]
    if not isinstance(overrides, list) or not all(isinstance(o, dict) or o is None for o in overrides):
        raise ConfigError(f"{path}: 'overrides' must be a list of dicts of dotted CLI keys, "
                          "e.g. overrides: [{data.synthetic_share: 0.0}, {data.synthetic_share: 0.5}]")
    grid = spec.get("grid") or {}
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"{path}: 'grid' must map dotted CLI keys to non-empty lists of values, "
                          "e.g. grid: {data.synthetic_share: [0.0, 0.5]}")
    for key in [k for o in overrides for k in (o or {})] + list(grid):
        if not isinstance(key, str) or key.startswith("-") or key in ("seed_everything", "loop.run_dir", "config"):
            raise ConfigError(f"{path}: override key {key!r} is not allowed: write dotted keys without dashes "
                              "(e.g. loop.generations); seeds and run directories are set by the sweep itself")
    grid_points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
    return [tuple({**(o or {}), **point}.items()) for o in overrides for point in grid_points]


def load_sweep(path: str | Path, *, check_configs: bool = True) -> list[SweepTask]:
    """Parse a sweep file into its ordered task list (the one parser behind run, --list, --count and --task)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {path} does not exist")
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"sweep file {path} is not valid YAML: {err}") from err
    if not isinstance(spec, dict):
        raise ConfigError(f"sweep file {path} must be a mapping with keys {sorted(SWEEP_KEYS)}")
    unknown = set(spec) - SWEEP_KEYS
    if unknown:
        raise ConfigError(f"sweep file {path}: unknown keys {sorted(unknown)}; allowed: {sorted(SWEEP_KEYS)}")
    configs = spec.get("configs")
    if not configs or not isinstance(configs, list):
        raise ConfigError(f"{path}: 'configs' must be a non-empty list of experiment YAML paths")
    seeds = spec.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                             for s in seeds):
        raise ConfigError(f"{path}: 'seeds' must be a non-empty list of integers, e.g. seeds: [0, 1, 2]")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{path}: 'seeds' has repeats {seeds}: each seed would share one run directory")
    out = spec.get("out")
    if not out or not isinstance(out, str):
        raise ConfigError(f"{path}: 'out' must name the sweep's output folder, e.g. out: runs/sweeps/{path.stem}")
    if check_configs:
        missing = [c for c in configs if not Path(c).is_file()]
        if missing:
            raise ConfigError(f"{path}: config files not found: {missing} (paths are relative to the folder you run "
                              "the sweep from, normally the repository root)")
    stems = [Path(c).stem for c in configs]
    if len(set(stems)) != len(stems):
        raise ConfigError(f"{path}: configs {configs} share a file name; run directories are named by the file "
                          "stem, so rename one")
    variants = _variants(spec, path)
    slugs = [override_slug(v) for v in variants]
    if len(set(slugs)) != len(slugs):
        raise ConfigError(f"{path}: override variants repeat (same folder names {slugs}); remove the duplicates")
    tasks = []
    for config, stem in zip(configs, stems):
        for variant, slug in zip(variants, slugs):
            folder = f"{stem}__{slug}" if slug else stem
            for seed in seeds:
                tasks.append(SweepTask(index=len(tasks), config=str(config), overrides=variant, seed=seed,
                                       run_dir=str(Path(out) / folder / f"seed_{seed}")))
    return tasks


def is_finished(run_dir: str | Path) -> bool:
    """True when the run holds a result row for every (generation, classifier) its config asks for."""
    from simulation.run_directory import RunDirectory  # the layout's one owner (imported here: it loads Lightning)

    run = RunDirectory(run_dir)
    try:
        config = yaml.safe_load(run.config_path.read_text()) or {}
        rows = [json.loads(line) for line in run.results_path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError, yaml.YAMLError):
        return False
    generations = int((config.get("loop") or {}).get("generations", 0))
    names = [c.get("name") or c.get("arch") for c in config.get("classifiers") or []]
    done = {(int(r["generation"]), r["classifier"]) for r in rows}
    return bool(names) and all((g, n) in done for g in range(generations + 1) for n in names)


def report_command(sweep_out: str) -> str:
    return f"python cli.py report '{Path(sweep_out) / '*' / 'seed_*'}' --out {Path(sweep_out) / 'report'}"


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
    """Cores divided between concurrent jobs (at least 1 each): OpenMP threads of several torch processes spinning
    on shared cores slow every one of them down several times (BENCHMARKS.md)."""
    return max(1, cores // max(1, jobs))


def thread_env(threads: int) -> dict[str, str]:
    """What a job's intra-op thread count is set through; an OMP_NUM_THREADS the user exported wins."""
    if os.environ.get("OMP_NUM_THREADS"):
        return {}
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def run_task(task: SweepTask, dry_run: bool = False, replace_process: bool = False) -> int:
    """Run one task (skipped when finished). ``replace_process`` execs cli.py in this process, so that under
    SLURM the task's process is the cli.py run itself (SIGTERM from a requeue reaches Lightning, not a wrapper)."""
    command = task.command()
    print(f"[sweep] task {task.index}: {shlex.join(command)}", flush=True)
    if dry_run:
        return 0
    if is_finished(task.run_dir):
        print(f"[sweep] task {task.index}: {task.run_dir} already finished, skipped", flush=True)
        return 0
    if replace_process:
        sys.stderr.flush()
        os.execv(command[0], command)
    return subprocess.call(command)


def run_concurrently(tasks: list[SweepTask], jobs: int, log_dir: Path, dry_run: bool = False) -> list[SweepTask]:
    """Run ``jobs`` tasks at a time, each with its share of the cores and its output in ``log_dir/task_<N>.log``;
    returns the tasks that failed."""
    cores = available_cores()
    threads = threads_per_job(jobs, cores)
    env = thread_env(threads)
    share = f"{env['OMP_NUM_THREADS']} thread(s) each" if env else \
        f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} as exported"
    print(f"[sweep] {jobs} tasks at a time on {cores} core(s): {share}" + (
        " (more jobs than cores: they will slow each other down)" if jobs > cores else ""), flush=True)
    pending = [t for t in tasks if dry_run or not _skip_finished(t)]
    running: dict[int, tuple[SweepTask, subprocess.Popen, object]] = {}
    failed: list[SweepTask] = []
    if not dry_run and pending:
        log_dir.mkdir(parents=True, exist_ok=True)
    while pending or running:
        while pending and len(running) < jobs:
            task = pending.pop(0)
            prefix = "".join(f"{k}={v} " for k, v in env.items())
            print(f"[sweep] task {task.index}: {prefix}{shlex.join(task.command())}", flush=True)
            if dry_run:
                continue
            log = open(log_dir / f"task_{task.index}.log", "a")  # closed when the task ends
            process = subprocess.Popen(task.command(), stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, **env})
            running[process.pid] = (task, process, log)
            print(f"[sweep] task {task.index} started (log: {log.name})", flush=True)
        for pid, (task, process, log) in list(running.items()):
            if process.poll() is None:
                continue
            log.close()
            del running[pid]
            status = "done" if process.returncode == 0 else f"FAILED (exit code {process.returncode})"
            print(f"[sweep] task {task.index} {status} (log: {log.name})", flush=True)
            if process.returncode != 0:
                failed.append(task)
        if running:
            time.sleep(0.5)
    return failed


def _skip_finished(task: SweepTask) -> bool:
    if is_finished(task.run_dir):
        print(f"[sweep] task {task.index}: {task.run_dir} already finished, skipped", flush=True)
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep", help="sweep YAML file")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--list", action="store_true", help="print the tasks (index, run_dir, command)")
    mode.add_argument("--count", action="store_true", help="print the number of tasks")
    mode.add_argument("--task", type=int, help="run only task N (0-based; SLURM_ARRAY_TASK_ID)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    parser.add_argument("--jobs", type=int, default=1,
                        help="tasks run at a time locally (default 1); the available cores are divided between them")
    args = parser.parse_args(argv)
    try:
        tasks = load_sweep(args.sweep)
        if args.task is not None and not 0 <= args.task < len(tasks):
            raise ConfigError(f"--task {args.task} is out of range: {args.sweep} has {len(tasks)} tasks "
                              f"(0-{len(tasks) - 1}); submit with sbatch --array=0-{len(tasks) - 1}")
        if args.jobs < 1:
            raise ConfigError(f"--jobs {args.jobs}: run at least 1 task at a time")
        if args.jobs > 1 and args.task is not None:
            raise ConfigError("--jobs runs several tasks of the sweep locally; --task runs one (a SLURM array "
                              "entry): use one or the other")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.count:
        print(len(tasks))
        return 0
    if args.list:
        for task in tasks:
            print(f"{task.index}\t{task.run_dir}\t{shlex.join(task.command(python='python'))}")
        return 0
    if args.task is not None:
        return run_task(tasks[args.task], args.dry_run, replace_process=True)
    out = str(Path(tasks[0].run_dir).parents[1])
    if args.jobs > 1:
        failed = run_concurrently(tasks, args.jobs, Path(out) / "sweep_logs", args.dry_run)
    else:
        failed = [t for t in tasks if run_task(t, args.dry_run) != 0]
    if failed:
        print(f"[sweep] {len(failed)} of {len(tasks)} tasks failed: {[t.index for t in failed]} "
              f"(re-run the same command to resume them)", file=sys.stderr)
    print(f"[sweep] {len(tasks) - len(failed)} of {len(tasks)} tasks done. Report:\n  {report_command(out)}",
          flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `--list | head`: the reader stopped listening, which is not an error of the sweep
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes stdout
        sys.exit(0)
