"""Run a sweep file: every (config, overrides, seed) combination in its own run directory.

Sweep file (YAML)::

    configs:                         # a path, or {path: ..., resources: {...}} for a config's own SLURM resources
      - configs/colored_mnist_biased.yaml
      - {path: configs/hardimagenet.yaml, resources: {gpus_per_node: 8, cpus_per_task: 64, time: "48:00:00"}}
    resources: {gpus_per_node: 1, cpus_per_task: 8, time: "24:00:00"}   # optional: every config's default
    seeds: [0, 1, 2]
    overrides:                       # optional: a list of variants, each a dict of dotted CLI overrides
      - {}
      - {data.regime.synthetic_share: 0.0}
    grid:                            # optional: dotted key -> list of values, cartesian product
      loop.generations: [5, 10]
    out: runs/sweeps/<name>

Tasks = configs x override variants x grid points x seeds (in that order, 0-based). Task run directory:
``<out>/<config stem>[__<override slug>]/seed_<seed>``. Resources (``--submit`` only): gpus_per_node (0: CPU only),
nodes, cpus_per_task, mem (e.g. 64G; omitted: the partition's default) and time; a task runs one process per GPU.

    python scripts/sweep.py SWEEP.yaml             run every task sequentially (finished runs are skipped)
    python scripts/sweep.py SWEEP.yaml --jobs 2    run 2 tasks at a time, the cores divided between them
    python scripts/sweep.py SWEEP.yaml --jobs 3 --gpus-per-job all
                                                   3 tasks at a time sharing every GPU of the node (each task with
                                                   --trainer.devices <all>: e.g. the seeds of the paper protocol)
    python scripts/sweep.py SWEEP.yaml --list      print the tasks (after checking every task's command line)
    python scripts/sweep.py SWEEP.yaml --count     print the number of tasks (for sbatch --array=0-<count-1>)
    python scripts/sweep.py SWEEP.yaml --task N    run task N only (the SLURM array entry point)
    python scripts/sweep.py SWEEP.yaml --dry-run   print the commands instead of running them
    python scripts/sweep.py SWEEP.yaml --submit [--max-parallel K] [--dry-run] [-- SBATCH OPTIONS]
                                                   submit SLURM arrays covering every unfinished task, one per set of
                                                   equal resources (--dry-run prints the sbatch lines; options after
                                                   -- such as --partition=gpu go to every sbatch)
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from common.allocation import workers_for_allocation  # noqa: E402
from common.cores import available_cores, threads_per_job  # noqa: E402
from common.errors import ConfigError  # noqa: E402

SWEEP_KEYS = {"configs", "seeds", "overrides", "grid", "out", "resources"}
MAX_SLUG = 80
SBATCH_SCRIPT = "scripts/slurm/sweep.sbatch"


@dataclass(frozen=True)
class Resources:
    """What one task of a sweep asks SLURM for: ``nodes`` x ``gpus_per_node`` processes (one per GPU; one process
    when CPU only), each with ``cpus_per_task`` CPUs."""

    gpus_per_node: int = 1
    nodes: int = 1
    cpus_per_task: int = 8
    mem: str | None = None
    time: str = "24:00:00"

    @property
    def tasks_per_node(self) -> int:
        return max(1, self.gpus_per_node)

    def sbatch_options(self) -> list[str]:
        """The sbatch options of an array of such tasks (--gres=none on CPU: the template's header asks a GPU)."""
        gpus = f"--gres=gpu:{self.gpus_per_node}" if self.gpus_per_node else "--gres=none"
        return [f"--nodes={self.nodes}", f"--ntasks-per-node={self.tasks_per_node}", gpus,
                f"--cpus-per-task={self.cpus_per_task}", *([f"--mem={self.mem}"] if self.mem else []),
                f"--time={self.time}"]


def parse_resources(value: object, where: str, base: Resources = Resources()) -> Resources:
    """A ``resources:`` mapping over ``base``; one ConfigError naming the bad key."""
    if value is None:
        return base
    fields = set(Resources.__dataclass_fields__)
    if not isinstance(value, dict) or set(value) - fields:
        raise ConfigError(f"{where}: 'resources' must map some of {sorted(fields)} to values, "
                          "e.g. resources: {gpus_per_node: 8, cpus_per_task: 64, time: \"48:00:00\"}")
    for key in ("gpus_per_node", "nodes", "cpus_per_task"):
        number = value.get(key, getattr(base, key))
        minimum = 0 if key == "gpus_per_node" else 1
        if not isinstance(number, int) or isinstance(number, bool) or number < minimum:
            raise ConfigError(f"{where}: resources.{key} must be an integer >= {minimum}, got {number!r}")
    for key in ("mem", "time"):
        text = value.get(key, getattr(base, key))
        if text is not None and (not isinstance(text, str) or not re.fullmatch(r"[0-9A-Za-z:-]+", text)):
            raise ConfigError(f"{where}: resources.{key} must be a SLURM value such as 64G or \"24:00:00\" "
                              f"(quoted in YAML), got {text!r}")
    return Resources(**{**base.__dict__, **value})


@dataclass(frozen=True)
class SweepTask:
    index: int
    config: str
    overrides: tuple[tuple[str, object], ...]
    seed: int
    run_dir: str
    resources: Resources = Resources()

    def override_args(self) -> list[str]:
        """What this task adds to its config on the command line: its overrides, seed and run directory."""
        args = [arg for key, value in self.overrides for arg in (f"--{key}", cli_value(value))]
        return [*args, "--seed_everything", str(self.seed), "--loop.run_dir", self.run_dir]

    def command(self, python: str = sys.executable) -> list[str]:
        """The `cli.py fit` command line of this task."""
        return [python, str(REPO_ROOT / "cli.py"), "fit", "--config", self.config, *self.override_args()]


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
                          "e.g. overrides: [{data.regime.synthetic_share: 0.0}, {data.regime.synthetic_share: 0.5}]")
    grid = spec.get("grid") or {}
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"{path}: 'grid' must map dotted CLI keys to non-empty lists of values, "
                          "e.g. grid: {data.regime.synthetic_share: [0.0, 0.5]}")
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
    entries = spec.get("configs")
    if not entries or not isinstance(entries, list):
        raise ConfigError(f"{path}: 'configs' must be a non-empty list of experiment YAML paths")
    default_resources = parse_resources(spec.get("resources"), str(path))
    configs, resources = [], []
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("path"), str) and set(entry) <= {"path", "resources"}:
            configs.append(entry["path"])
            resources.append(parse_resources(entry.get("resources"), f"{path}: {entry['path']}", default_resources))
        elif isinstance(entry, str):
            configs.append(entry)
            resources.append(default_resources)
        else:
            raise ConfigError(f"{path}: every entry of 'configs' must be a path or {{path: ..., resources: {{...}}}}, "
                              f"got {entry!r}")
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
    for config, stem, needs in zip(configs, stems, resources):
        for variant, slug in zip(variants, slugs):
            folder = f"{stem}__{slug}" if slug else stem
            for seed in seeds:
                tasks.append(SweepTask(index=len(tasks), config=str(config), overrides=variant, seed=seed,
                                       run_dir=str(Path(out) / folder / f"seed_{seed}"), resources=needs))
    return tasks


def task_problems(tasks: list[SweepTask]) -> list[str]:
    """One line per task whose ``cli.py fit`` command line (config, overrides, seed, run directory) the CLI's parser
    refuses, or that asks for smoke settings; each (config, overrides) variant is parsed once."""
    from cli import fit_arguments_problem  # the CLI's own parser (imported here: it loads Lightning)

    checked: dict[tuple, str | None] = {}
    problems = []
    for task in tasks:
        variant = (task.config, task.overrides)
        if variant not in checked:
            checked[variant] = fit_arguments_problem(["--config", task.config, *task.override_args()])
        if checked[variant] is not None:
            problems.append(f"task {task.index} ({task.run_dir}): {checked[variant]}")
    return problems


def is_finished(run_dir: str | Path) -> bool:
    """True when the run holds a result row for every (generation, classifier) its config asks for."""
    from records.run_record import is_finished  # the one answer (imported here: it loads torch)

    return is_finished(run_dir)


def array_spec(indices: list[int]) -> str:
    """Task indices as a SLURM --array value: runs of consecutive indices as ranges, e.g. ``0-2,6,9-11``."""
    runs: list[list[int]] = []
    for index in sorted(indices):
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return ",".join(f"{a}-{b}" if b > a else f"{a}" for a, b in runs)


def parse_array_spec(spec: str) -> list[int]:
    """The indices of a --array value (``0-2,6``; a ``%K`` throttle is ignored)."""
    indices: list[int] = []
    for part in spec.split("%")[0].split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?(?::(\d+))?", part.strip())
        if not match:
            raise ConfigError(f"--tasks {spec!r} is not a SLURM --array value such as 0-2,6")
        first, last, step = int(match[1]), int(match[2] or match[1]), int(match[3] or 1)
        indices += range(first, last + 1, step)
    return sorted(set(indices))


def resource_groups(tasks: list[SweepTask]) -> list[tuple[Resources, list[SweepTask]]]:
    """Tasks of equal resources together, in order of their first task: one array each."""
    groups: dict[Resources, list[SweepTask]] = {}
    for task in tasks:
        groups.setdefault(task.resources, []).append(task)
    return list(groups.items())


def sbatch_commands(sweep_path: str, tasks: list[SweepTask], max_parallel: int | None = None,
                    extra: list[str] | None = None) -> list[list[str]]:
    """One ``sbatch`` line per resource group, its --array naming exactly the group's tasks; the template is told
    those tasks too, so that an array edited by hand fails at once instead of skipping some."""
    commands = []
    for resources, group in resource_groups(tasks):
        spec = array_spec([t.index for t in group])
        throttle = f"%{max_parallel}" if max_parallel else ""
        commands.append(["sbatch", f"--job-name=genbias-{Path(sweep_path).stem}", f"--array={spec}{throttle}",
                         *resources.sbatch_options(), *(extra or []), SBATCH_SCRIPT, sweep_path, spec])
    return commands


def submit(sweep_path: str, tasks: list[SweepTask], max_parallel: int | None, dry_run: bool,
           extra: list[str] | None = None) -> int:
    """Submit every unfinished task (``--submit``); prints each sbatch line and, when it ran, SLURM's answer.
    ``extra`` sbatch options (after ``--`` on the command line: partition, account, output) go to every array."""
    pending = [t for t in tasks if not _skip_finished(t)]
    if not pending:
        print(f"[sweep] all {len(tasks)} tasks are finished: nothing to submit", flush=True)
        return 0
    commands = sbatch_commands(sweep_path, pending, max_parallel, extra)
    if not dry_run and shutil.which("sbatch") is None:
        print("error: sbatch not found: --submit needs a SLURM client (--dry-run prints the sbatch lines)",
              file=sys.stderr)
        return 2
    for command in commands:
        print(shlex.join(command), flush=True)
        if dry_run:
            continue
        done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"error: sbatch failed (exit code {done.returncode}): {' '.join(done.stderr.split())}",
                  file=sys.stderr)
            return 1
        print(f"[sweep] {done.stdout.strip()}", flush=True)
    verb = "would submit" if dry_run else "submitted"
    print(f"[sweep] {verb} {len(pending)} of {len(tasks)} tasks in {len(commands)} array(s)"
          + (f" ({len(tasks) - len(pending)} finished, skipped)" if len(pending) < len(tasks) else ""), flush=True)
    return 0


def check_array(sweep_path: str, tasks: list[SweepTask], expected: str | None, env: dict[str, str]) -> str | None:
    """Why this SLURM array task must not run (its array does not cover the sweep's tasks exactly), or None.

    ``expected`` is the --array that ``--submit`` gave the job; a hand-made submission must cover 0..count-1.
    """
    indices = parse_array_spec(expected) if expected else list(range(len(tasks)))
    right = expected or f"0-{len(tasks) - 1}"
    count, low, high = (env.get(f"SLURM_ARRAY_TASK_{k}", "") for k in ("COUNT", "MIN", "MAX"))
    task_id = env.get("SLURM_ARRAY_TASK_ID", "")
    if not task_id.isdigit():
        return f"not an array job: submit with python scripts/sweep.py {sweep_path} --submit, or sbatch --array={right}"
    shown = f"{low}-{high}" if low and high else f"task {task_id}"
    mismatch = (int(task_id) not in indices or (count.isdigit() and int(count) != len(indices))
                or (high.isdigit() and int(high) != max(indices)) or (low.isdigit() and int(low) != min(indices)))
    if mismatch:
        return (f"the array ({shown}, {count or '?'} tasks) does not match {sweep_path} ({len(indices)} tasks "
                f"expected): submit with --array={right}, or use python scripts/sweep.py {sweep_path} --submit")
    return None


def allocation_overrides(env: dict[str, str]) -> list[str]:
    """A task SLURM gave several processes (GPUs, nodes) runs DDP across them, one rank per process."""
    tasks = env.get("SLURM_NTASKS", "1")
    if not tasks.isdigit() or int(tasks) <= 1:
        return []
    per_node = env.get("SLURM_NTASKS_PER_NODE", "").split("(")[0] or str(int(tasks) // int(env.get("SLURM_NNODES", 1)))
    return ["--trainer.devices", per_node, "--trainer.num_nodes", env.get("SLURM_NNODES", "1"),
            "--trainer.strategy", "ddp"]


def visible_gpus() -> list[str]:
    """The GPUs local jobs may use: CUDA_VISIBLE_DEVICES where set, else the ones nvidia-smi lists."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(listed.stdout.splitlines()) if line.startswith("GPU ")]


def report_command(sweep_out: str) -> str:
    return f"python cli.py report '{Path(sweep_out) / '*' / 'seed_*'}' --out {Path(sweep_out) / 'report'}"


def thread_env(threads: int) -> dict[str, str]:
    """What a job's intra-op thread count is set through; an OMP_NUM_THREADS the user exported wins."""
    if os.environ.get("OMP_NUM_THREADS"):
        return {}
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def run_task(task: SweepTask, dry_run: bool = False, replace_process: bool = False) -> int:
    """Run one task (skipped when finished). ``replace_process`` execs cli.py in this process, so that under
    SLURM the task's process is the cli.py run itself (SIGTERM from a requeue reaches Lightning, not a wrapper);
    there, a task given several processes runs them as DDP ranks."""
    command = task.command()
    if replace_process:  # an array task: DDP over its processes, DataLoader workers from its CPUs
        workers, warning = workers_for_allocation(task.config, task.override_args(), os.environ)
        command += allocation_overrides(dict(os.environ)) + workers
        if warning:
            print(f"[sweep] task {task.index}: {warning}", file=sys.stderr, flush=True)
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


def gpu_groups(gpus: list[str], per_job: str) -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` of each job slot: ``per_job`` GPUs each (consecutive, the leftover unused), or
    every GPU for each with ``all``."""
    if not gpus:
        return []
    if per_job == "all":
        return [",".join(gpus)]
    size = int(per_job)
    return [",".join(gpus[i:i + size]) for i in range(0, len(gpus) - size + 1, size)]


def run_concurrently(tasks: list[SweepTask], jobs: int, log_dir: Path, dry_run: bool = False,
                     gpus: list[str] | None = None, gpus_per_job: str = "1") -> list[SweepTask]:
    """Run ``jobs`` tasks at a time, each with its share of the cores, its group of ``gpus`` (``gpu_groups``; shared
    round robin when there are fewer groups than jobs) and its output in ``log_dir/task_<N>.log``; returns the tasks
    that failed."""
    cores = available_cores()
    threads = threads_per_job(jobs, cores)
    env = thread_env(threads)
    gpus = list(gpus or [])
    groups = gpu_groups(gpus, gpus_per_job)
    share = f"{env['OMP_NUM_THREADS']} thread(s) each" if env else \
        f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} as exported"
    print(f"[sweep] {jobs} tasks at a time on {cores} core(s): {share}" + (
        " (more jobs than cores: they will slow each other down)" if jobs > cores else "")
        + (f"; GPUs {','.join(gpus)}, {gpus_per_job} per job" + (" (shared)" if jobs > len(groups) else "")
           if gpus else ""),
        flush=True)
    pending = [t for t in tasks if dry_run or not _skip_finished(t)]
    running: dict[int, tuple[SweepTask, subprocess.Popen, object, int]] = {}
    failed: list[SweepTask] = []
    if not dry_run and pending:
        log_dir.mkdir(parents=True, exist_ok=True)
    shown = 0  # a dry run starts nothing: its tasks take the slots in turn
    while pending or running:
        while pending and len(running) < jobs:
            task = pending.pop(0)
            slot = shown % jobs if dry_run else min(set(range(jobs)) - {s for *_, s in running.values()})
            shown += 1
            job_env = {**env, **({"CUDA_VISIBLE_DEVICES": groups[slot % len(groups)]} if groups else {})}
            prefix = "".join(f"{k}={v} " for k, v in job_env.items())
            print(f"[sweep] task {task.index}: {prefix}{shlex.join(task.command())}", flush=True)
            if dry_run:
                continue
            log = open(log_dir / f"task_{task.index}.log", "a")  # closed when the task ends
            process = subprocess.Popen(task.command(), stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, **job_env})
            running[process.pid] = (task, process, log, slot)
            print(f"[sweep] task {task.index} started (log: {log.name})", flush=True)
        for pid, (task, process, log, _) in list(running.items()):
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
    mode.add_argument("--submit", action="store_true",
                      help="submit SLURM arrays covering every unfinished task, one per set of equal resources")
    mode.add_argument("--check-array", action="store_true",
                      help="(sweep.sbatch) exit 2 with one line when this SLURM array does not cover the sweep")
    parser.add_argument("--tasks", help="(with --check-array) the --array that --submit gave the job, e.g. 0-2,6")
    parser.add_argument("--max-parallel", type=int, help="(with --submit) at most K tasks of each array at a time")
    parser.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    parser.add_argument("--jobs", type=int, default=1,
                        help="tasks run at a time locally (default 1); the available cores are divided between them "
                             "and, where GPUs exist, each job gets its own (CUDA_VISIBLE_DEVICES)")
    parser.add_argument("--share-gpus", action="store_true",
                        help="allow --jobs above the number of GPUs: jobs then share GPUs round robin")
    parser.add_argument("--gpus-per-job", default="1", metavar="N|all",
                        help="GPUs each local job sees (default 1): N consecutive GPUs, or all of them, shared by "
                             "every job (e.g. the seeds of the paper protocol, each with --trainer.devices <all> "
                             "and --loop.classifier_parallelism devices, filling each other's idle GPUs)")
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []  # sbatch options for --submit
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    gpus: list[str] = []
    try:
        tasks = load_sweep(args.sweep)
        if args.task is not None and not 0 <= args.task < len(tasks):
            raise ConfigError(f"--task {args.task} is out of range: {args.sweep} has {len(tasks)} tasks "
                              f"(0-{len(tasks) - 1}); submit with sbatch --array=0-{len(tasks) - 1}")
        if args.jobs < 1:
            raise ConfigError(f"--jobs {args.jobs}: run at least 1 task at a time")
        if args.jobs > 1 and (args.task is not None or args.submit):
            raise ConfigError("--jobs runs several tasks of the sweep locally; --task runs one (a SLURM array "
                              "entry) and --submit hands them to SLURM: use one or the other")
        if args.max_parallel is not None and (not args.submit or args.max_parallel < 1):
            raise ConfigError("--max-parallel K (K >= 1) limits the tasks of each array SLURM runs at a time: "
                              "use it with --submit")
        if extra and not args.submit:
            raise ConfigError(f"options after -- ({' '.join(extra)}) go to sbatch: use them with --submit")
        if args.tasks is not None and not args.check_array:
            raise ConfigError("--tasks is what --submit tells sweep.sbatch; it goes with --check-array only")
        if args.tasks is not None:
            parse_array_spec(args.tasks)
        if args.gpus_per_job != "all" and not (args.gpus_per_job.isdigit() and int(args.gpus_per_job) >= 1):
            raise ConfigError(f"--gpus-per-job {args.gpus_per_job}: give a number of GPUs (1 or more) or all")
        if args.jobs > 1:
            gpus = visible_gpus()
            groups = gpu_groups(gpus, args.gpus_per_job)
            if gpus and not groups:
                raise ConfigError(f"--gpus-per-job {args.gpus_per_job} asks more GPUs than the {len(gpus)} here "
                                  f"({','.join(gpus)}): use at most {len(gpus)}, or all")
            if gpus and args.gpus_per_job != "all" and args.jobs > len(groups) and not args.share_gpus:
                raise ConfigError(f"--jobs {args.jobs} asks more jobs than the {len(gpus)} GPU(s) here "
                                  f"({','.join(gpus)}) can give {args.gpus_per_job} each: use --jobs {len(groups)}, "
                                  "or add --share-gpus to let jobs share GPUs")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.count:
        print(len(tasks))
        return 0
    if not args.check_array and args.task is None:  # nothing is listed, submitted or run while a task is wrong
        problems = task_problems(tasks)
        if problems:
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            done = "listed" if args.list else "submitted" if args.submit else "run"
            print(f"error: {len(problems)} of {len(tasks)} tasks of {args.sweep} cannot run: nothing was {done}; "
                  "fix the sweep file", file=sys.stderr)
            return 2
    if args.list:
        for task in tasks:
            print(f"{task.index}\t{task.run_dir}\t{shlex.join(task.command(python='python'))}")
        return 0
    if args.check_array:
        problem = check_array(args.sweep, tasks, args.tasks, dict(os.environ))
        if problem:
            print(f"sweep.sbatch: error: {problem}", file=sys.stderr)
            return 2
        if not args.tasks and len({t.resources for t in tasks}) > 1:
            print(f"sweep.sbatch: note: {args.sweep} gives its configs different resources; this array gives every "
                  f"task the same (python scripts/sweep.py {args.sweep} --submit asks each its own)", file=sys.stderr)
        return 0
    if args.submit:
        return submit(args.sweep, tasks, args.max_parallel, args.dry_run, extra)
    if args.task is not None:
        return run_task(tasks[args.task], args.dry_run, replace_process=True)
    out = str(Path(tasks[0].run_dir).parents[1])
    if args.jobs > 1:
        failed = run_concurrently(tasks, args.jobs, Path(out) / "sweep_logs", args.dry_run, gpus=gpus,
                                  gpus_per_job=args.gpus_per_job)
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
