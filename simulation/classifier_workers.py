"""Classifiers side by side (``loop.classifier_parallelism: devices``): a generation's classifier stages run at once,
one worker process per device, each a single-device fit with its configured batch.

A worker is this CLI started again on the run's saved ``config.yaml`` with one device (``CUDA_VISIBLE_DEVICES``
naming its GPU; on CPU, the launch's threads divided between the workers) and ``WORKER_ENV`` set. It starts once per
launch, at the first generation that needs it (its imports and set-up take seconds), and takes jobs (``WorkerJob``)
on its standard input until the launch closes it: each job trains and evaluates one classifier of one generation and
records the two stages in the job's own file (``RunDirectory.record_elsewhere``), never in the run's state, so no
two processes write ``state.json``. The launch adopts each record, in the classifiers' order, once its job has ended
(``RunDirectory.adopt_worker_record``), and at its start any record a killed launch left behind: a killed generation
resumes only the unfinished classifiers, each from its last checkpoint. Every stage seeds itself from (seed,
generation, stage), so a worker computes the rows the sequential loop computes at the same threads per classifier.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from common.cores import available_cores, threads_per_job
from common.distributed import is_rank_zero
from common.errors import ConfigError, WorkerLost
from common.logs import format_duration, get_logger
from records.state import StageKey
from simulation.stages.base import RunContext
from simulation.trainers import StageTrainers

log = get_logger()

#: the environment variable that makes a launch of the CLI a classifier worker
WORKER_ENV = "GENBIAS_CLASSIFIER_WORKER"
#: the line a worker prints when a job is done (followed by its classifier); the launch does not show it
JOB_DONE = "[genbias-worker] job done:"
#: what a launcher (torchrun, srun, Lightning's DDP launcher) tells its processes: a worker is a process of its own
LAUNCHER_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "LOCAL_WORLD_SIZE",
                      "MASTER_ADDR", "MASTER_PORT", "PL_GLOBAL_SEED")
LAUNCHER_PREFIXES = ("TORCHELASTIC_", "SLURM_", "PMI_", "OMPI_", "JSM_", "LSB_")
#: SLURM variables a worker keeps: they name the job in its stages' provenance, and tell Lightning nothing
SLURM_KEPT = ("SLURM_JOB_ID", "SLURM_RESTART_COUNT", "SLURM_JOB_NAME")
#: the worker output lines the launch keeps for its error message
TAIL_LINES = 20
#: how long a worker's process may have ended before its output says so, before the launch takes it as failed
EXIT_GRACE_S = 5.0


@dataclass(frozen=True)
class WorkerJob:
    """One job of a worker: train and evaluate ``classifier`` at ``generation``, recording both in ``record``."""

    generation: int
    classifier: str
    record: str

    def to_line(self) -> str:
        return json.dumps(dataclasses.asdict(self)) + "\n"

    @classmethod
    def from_line(cls, line: str) -> WorkerJob:
        return cls(**json.loads(line))


def is_worker() -> bool:
    """Whether this process was started as a classifier worker (``loop.classifier_parallelism: devices``)."""
    return os.environ.get(WORKER_ENV) == "1"


def worker_jobs(lines: Iterable[str]) -> Iterable[WorkerJob]:
    """The jobs on a worker's standard input, each acknowledged with ``JOB_DONE`` once the caller has run it."""
    for line in lines:
        if line.strip():
            job = WorkerJob.from_line(line)
            yield job
            print(f"{JOB_DONE} {job.classifier}", flush=True)


@dataclass(frozen=True)
class WorkerSlot:
    """Where one worker runs: a GPU (``CUDA_VISIBLE_DEVICES``), or a share of the CPU threads."""

    name: str
    accelerator: str
    env: dict[str, str]


def requested_gpus(devices, physical: list[str]) -> list[int]:
    """The indices, among the GPUs this process sees (``physical``), that ``trainer.devices`` asks for, read as
    Lightning reads it (a count, ``-1`` / ``auto`` for all, a list or a ``"0,2"`` string of indices); ConfigError
    when it asks for more than are visible (e.g. a SLURM task that sees only its own GPU)."""
    text = str(devices).strip()
    if isinstance(devices, (list, tuple)):
        ids = [int(d) for d in devices]
    elif text in ("auto", "-1"):
        ids = list(range(len(physical)))
    elif "," in text:
        ids = [int(d) for d in text.split(",") if d.strip()]
    else:
        ids = list(range(int(text)))
    if not ids or max(ids) >= len(physical):
        raise ConfigError(
            f"loop.classifier_parallelism: devices gives each classifier a GPU of trainer.devices ({devices!r}), "
            f"and this process sees {len(physical)} GPU(s) (CUDA_VISIBLE_DEVICES={','.join(physical) or 'none'}): "
            "make the node's GPUs visible to the launch (e.g. srun without --gpu-bind, one task per node), or set "
            "loop.classifier_parallelism sequential")
    return ids


def worker_slots(trainers: StageTrainers, classifiers: int) -> list[WorkerSlot]:
    """The slots of this node, at most one per classifier: every GPU the trainer settings give the run (its
    ``devices`` of the GPUs this process sees); on CPU one per usable core, this process's torch threads divided
    between them (at least one each), so the workers run at the threads the launch runs each stage with when there
    are fewer threads than cores."""
    if trainers.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        physical = [d.strip() for d in visible.split(",")] if visible else \
            [str(i) for i in range(torch.cuda.device_count())]
        chosen = [physical[i] for i in requested_gpus(trainers.trainer_kwargs.get("devices", "auto"), physical)]
        return [WorkerSlot(f"GPU {gpu}", "gpu", {"CUDA_VISIBLE_DEVICES": gpu}) for gpu in chosen[:classifiers]]
    count = max(1, min(classifiers, available_cores()))
    per_worker = str(threads_per_job(count, torch.get_num_threads()))
    return [WorkerSlot(f"CPU, {per_worker} thread(s)", "cpu",
                       {"OMP_NUM_THREADS": per_worker, "MKL_NUM_THREADS": per_worker, "CUDA_VISIBLE_DEVICES": ""})
            for _ in range(count)]


def release_gpu_memory() -> None:
    """Hand this process's cached GPU memory back to the device (another process is about to use it)."""
    if torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()


def worker_environment(slot: WorkerSlot) -> dict[str, str]:
    """This process's environment without its launcher's variables, with the slot's device and ``WORKER_ENV``."""
    env = {key: value for key, value in os.environ.items()
           if key not in LAUNCHER_VARIABLES and (not key.startswith(LAUNCHER_PREFIXES) or key in SLURM_KEPT)}
    return {**env, **slot.env, WORKER_ENV: "1", "PYTHONUNBUFFERED": "1"}


class _Worker:
    """A started worker process, the thread copying its output, and its current job."""

    def __init__(self, slot: WorkerSlot, process: subprocess.Popen, done: queue.Queue) -> None:
        self.slot, self.process = slot, process
        self.job: WorkerJob | None = None
        self.job_started = 0.0
        self.log_path: Path | None = None
        self.tail: deque = deque(maxlen=TAIL_LINES)
        self.reported = False  # its end has been told (a failure line)
        self._seen_gone: float | None = None
        self.reader = threading.Thread(target=self._copy_output, args=(done,), daemon=True,
                                       name=f"genbias-worker-{process.pid}")
        self.reader.start()

    def gone_for(self, seconds: float) -> bool:
        """Whether its process has ended at least ``seconds`` ago (as this launch first saw it)."""
        if self.process.poll() is None:
            return False
        if self._seen_gone is None:
            self._seen_gone = time.monotonic()
        return time.monotonic() - self._seen_gone >= seconds

    def give(self, job: WorkerJob, log_path: Path) -> None:
        self.job, self.log_path, self.job_started = job, log_path, time.monotonic()
        self.process.stdin.write(job.to_line())
        self.process.stdin.flush()

    def _copy_output(self, done: queue.Queue) -> None:
        """Copy the worker's lines to its job's log file and, prefixed with the job's classifier, to this launch's
        output; report each finished job on ``done``, and the end of its output (the process is ending) in any
        case: a line that cannot be shown (a closed output, a full disk) costs the line, never the report."""
        try:
            for line in self.process.stdout:
                text, marker, label = line.partition(JOB_DONE)  # (a worker's unfinished line may precede it)
                if marker:
                    if text.strip():
                        self._show(text + "\n")
                    done.put((self, label.strip()))
                    self.log_path = None  # lines between jobs belong to none
                else:
                    self._show(line)
        finally:
            done.put((self, None))

    def _show(self, line: str) -> None:
        self.tail.append(line.rstrip("\n"))
        label = self.job.classifier if self.job is not None else f"worker {self.process.pid}"
        try:
            if self.log_path is not None:
                with open(self.log_path, "a") as log_file:
                    log_file.write(line)
            sys.stdout.write(f"[{label}] {line}")
            sys.stdout.flush()
        except (OSError, ValueError):  # (ValueError: a closed stdout)
            pass


class SideBySideClassifiers:
    """Runs a generation's classifier stages on a pool of worker processes, one per slot (``worker_slots``), started
    at the first generation that needs them and kept until ``close``.

    ``command`` starts this CLI's ``fit`` again (e.g. ``[python, cli.py, fit]``); the workers' settings follow it.
    """

    def __init__(self, command: list[str]) -> None:
        self.command = list(command)
        self.workers: list[_Worker] = []
        self.done: queue.Queue = queue.Queue()

    def run(self, context: RunContext, generation: int) -> None:
        run_dir = context.run_dir
        labels = [c.label for c in context.classifiers]
        release_gpu_memory()  # every rank: the generator stages' cached blocks, for the workers on the same GPUs
        if not is_rank_zero():  # the other ranks of a DDP launch wait for rank 0's workers (no collective: hours)
            for label in labels:
                run_dir.wait_for_stage(StageKey.evaluate(generation, label), context.rank_zero_gone)
            run_dir.load()
            return
        for label in labels:  # what the workers of a killed launch finished
            adopted = run_dir.adopt_worker_record(run_dir.worker_record_path(generation, label), generation, label)
            if adopted:
                log.info(f"generation {generation}: recorded {', '.join(map(str, adopted))}, finished by a worker of "
                         "an earlier launch")
        todo = [label for label in labels if not run_dir.is_done(StageKey.evaluate(generation, label))]
        if todo:
            self._run_jobs(context, generation, todo)

    def close(self) -> None:
        """End the workers: their input closed, they exit after their current job (killed after 10 s)."""
        for worker in self.workers:
            if worker.process.poll() is None:
                try:
                    worker.process.stdin.close()
                except OSError:
                    pass
        deadline = time.monotonic() + 10
        for worker in self.workers:
            try:
                worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
        self.workers = []

    # ------------------------------------------------------------------------------------------- the launch's side
    def _start_workers(self, context: RunContext) -> None:
        """Start one worker per slot (once per launch; after a failure the launch ends, so none is replaced)."""
        if self.workers:
            return
        run_dir, data = context.run_dir, context.data
        args = [*self.command, "--config", str(run_dir.config_path), "--loop.run_dir", str(run_dir.path),
                "--trainer.devices", "1", "--trainer.num_nodes", "1", "--trainer.strategy", "auto",
                "--trainer.enable_progress_bar", "false", "--data.num_workers", str(data.num_workers),
                "--data.pin_memory", str(data.pin_memory).lower(), "--data.view_store", str(data.view_store).lower()]
        if data.view_store_dir is not None:
            args += ["--data.view_store_dir", str(data.view_store_dir)]
        every = context.trainers.trainer_kwargs.get("log_every_n_steps")
        if every is not None:
            args += ["--trainer.log_every_n_steps", str(every)]
        if context.loop.loggers:
            args += ["--loop.loggers", json.dumps([dataclasses.asdict(spec) for spec in context.loop.loggers])]
        for slot in worker_slots(context.trainers, len(context.classifiers)):
            process = subprocess.Popen([*args, "--trainer.accelerator", slot.accelerator],
                                       env=worker_environment(slot), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1)
            self.workers.append(_Worker(slot, process, self.done))
        log.info(f"classifier workers started ({len(self.workers)}, {self.workers[0].slot.name} each; pids "
                 f"{', '.join(str(w.process.pid) for w in self.workers)}): they take every generation's classifiers")

    def _run_jobs(self, context: RunContext, generation: int, todo: list[str]) -> None:
        run_dir = context.run_dir
        self._start_workers(context)
        if context.trainers.loggers is not None:
            context.trainers.loggers.open_tracker_runs()  # the workers' stages nest under the run's tracker runs
        context.progress(generation, f"training {', '.join(todo)} side by side on {len(self.workers)} worker(s)")
        waiting, ended, failures = list(todo), [], []
        try:
            while waiting or any(w.job is not None for w in self.workers):
                for worker in self.workers:
                    if worker.job is None and worker.process.poll() is not None and not worker.reported:
                        failures.append(self._failure(context, worker))  # found dead between jobs
                    if waiting and worker.job is None and not failures and worker.process.poll() is None:
                        label = waiting.pop(0)  # none after a failure
                        record = run_dir.worker_record_path(generation, label)
                        record.parent.mkdir(parents=True, exist_ok=True)
                        record.unlink(missing_ok=True)  # (an earlier launch's was adopted before)
                        try:
                            worker.give(WorkerJob(generation, label, str(record)),
                                        run_dir.worker_log_path(generation, label))
                            log.info(f"generation {generation}: {label} on worker {worker.process.pid} "
                                     f"({worker.slot.name})")
                        except OSError:  # its process has ended (an error at its start)
                            worker.process.wait()
                            failures.append(self._failure(context, worker))
                            ended.append(label)
                            worker.job = None
                if not any(w.job is not None for w in self.workers):
                    break  # every worker is gone or stopped taking jobs
                try:
                    worker, label = self.done.get(timeout=0.5)
                except queue.Empty:
                    worker = next((w for w in self.workers if w.job is not None and w.gone_for(EXIT_GRACE_S)), None)
                    if worker is None:
                        continue
                    label = None  # ended, and its output did not say so (a reader cut short, an inherited pipe)
                if worker.job is None:
                    continue
                if label is None:  # its process ended in the middle of the job
                    worker.process.wait()
                    failures.append(self._failure(context, worker))
                else:
                    log.info(f"generation {generation}: {label} finished on its worker in "
                             f"{format_duration(time.monotonic() - worker.job_started)}")
                ended.append(worker.job.classifier)
                worker.job = None
                self._adopt(run_dir, generation, todo, ended, in_order=True)
        finally:
            self._adopt(run_dir, generation, todo, ended, in_order=False)
        done = [label for label in todo if run_dir.is_done(StageKey.evaluate(generation, label))]
        unfinished = [label for label in todo if label not in done]
        if unfinished:
            why = failures[0] if failures else "every classifier worker has stopped"
            more = f" (and {len(failures) - 1} more worker(s))" if len(failures) > 1 else ""
            raise WorkerLost(f"{why}{more}; finished and recorded: {', '.join(done) or 'none'}; re-run the same "
                             f"command to train the unfinished classifier(s) {', '.join(unfinished)} from their last "
                             "checkpoint")

    @staticmethod
    def _adopt(run_dir, generation: int, todo: list[str], ended: list[str], in_order: bool) -> None:
        """Adopt the ended jobs' records in the classifiers' order. ``in_order`` (while workers train): only up to the
        first classifier still training, so the state lists the stages as a sequential run does, and a record that
        waits stays on disk, adopted by the next launch should this one be killed. Otherwise (the launch stops
        taking jobs) every ended job's record, so nothing finished waits for a relaunch: after a failure the state may
        list a later classifier before an earlier unfinished one."""
        for label in todo:
            if label not in ended:
                if in_order:
                    return
                continue
            if not run_dir.is_done(StageKey.evaluate(generation, label)):
                run_dir.adopt_worker_record(run_dir.worker_record_path(generation, label), generation, label)

    @staticmethod
    def _failure(context: RunContext, worker: _Worker) -> str:
        """Why a worker ended in the middle of its job (or between jobs), as the start of a line."""
        worker.reported = True
        run_dir, job, code = context.run_dir, worker.job, worker.process.poll()
        how = (f"was killed by {signal.Signals(-code).name}" if code is not None and code < 0
               and -code in signal.Signals._value2member_map_
               else f"exited with code {code}" if code else "exited before finishing its job")
        said = next((line for line in reversed(worker.tail) if line.startswith("error: ")), None)
        said = f" ({said})" if said else ""
        if job is None:
            return (f"classifier worker {worker.process.pid} ({worker.slot.name}) {how} between jobs{said}; its "
                    "lines are in this launch's output")
        stage = next((key for key in (StageKey.train_classifier(job.generation, job.classifier),
                                      StageKey.evaluate(job.generation, job.classifier))
                      if not run_dir.is_done(key)), StageKey.evaluate(job.generation, job.classifier))
        return (f"classifier worker {job.classifier} (pid {worker.process.pid}, {worker.slot.name}) {how} during "
                f"stage {stage}{said}; its output: {run_dir.worker_log_path(job.generation, job.classifier)}")
