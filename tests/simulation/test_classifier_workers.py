"""The classifier workers' slots, environment and job protocol (``simulation.classifier_workers``); the workers
themselves run through ``cli.py fit`` in tests/e2e/test_classifiers_side_by_side.py."""

from __future__ import annotations

import queue

import pytest
import torch

from common.errors import ConfigError
from simulation import classifier_workers
from simulation.classifier_workers import (
    JOB_DONE,
    WORKER_ENV,
    WorkerJob,
    WorkerSlot,
    worker_environment,
    worker_jobs,
    worker_slots,
)
from simulation.trainers import StageTrainers


def trainers(tmp_path, **kwargs) -> StageTrainers:
    return StageTrainers(kwargs, None, tmp_path)


def test_on_cpu_one_worker_per_core_at_most_one_per_classifier_and_the_threads_divided(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(classifier_workers, "available_cores", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    slots = worker_slots(trainers(tmp_path, accelerator="cpu"), classifiers=5)
    assert [s.env["OMP_NUM_THREADS"] for s in slots] == ["1", "1"] and {s.accelerator for s in slots} == {"cpu"}
    monkeypatch.setattr(classifier_workers, "available_cores", lambda: 16)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 16)
    assert [s.env["OMP_NUM_THREADS"] for s in worker_slots(trainers(tmp_path), classifiers=5)] == ["3"] * 5
    assert len(worker_slots(trainers(tmp_path), classifiers=1)) == 1
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)  # fewer threads than cores: one each, never zero
    assert [s.env["OMP_NUM_THREADS"] for s in worker_slots(trainers(tmp_path), classifiers=2)] == ["1", "1"]


def test_on_gpus_one_worker_per_device_of_the_trainer_settings_named_by_its_physical_id(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3,5,7")
    gpus = [s.env["CUDA_VISIBLE_DEVICES"] for s in worker_slots(trainers(tmp_path, devices=[1, 3]), classifiers=5)]
    assert gpus == ["3", "7"]
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in worker_slots(trainers(tmp_path, devices=3), 5)] == ["2", "3", "5"]
    assert len(worker_slots(trainers(tmp_path, devices="auto"), classifiers=2)) == 2  # at most one per classifier
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    slots = worker_slots(trainers(tmp_path, accelerator="gpu", devices=-1), classifiers=5)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "1", "2", "3"]
    assert {s.accelerator for s in slots} == {"gpu"}


def test_a_worker_leaves_its_launcher_behind_and_keeps_its_job_and_slot(tmp_path, monkeypatch):
    for name, value in {"RANK": "3", "LOCAL_RANK": "3", "WORLD_SIZE": "8", "MASTER_PORT": "1234",
                        "SLURM_NTASKS": "8", "SLURM_PROCID": "3", "SLURM_JOB_ID": "77", "TORCHELASTIC_RUN_ID": "x",
                        "HF_HUB_OFFLINE": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    env = worker_environment(worker_slots(trainers(tmp_path, accelerator="cpu"), 1)[0])
    for gone in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT", "SLURM_NTASKS", "SLURM_PROCID",
                 "TORCHELASTIC_RUN_ID"):
        assert gone not in env, gone  # else Lightning would take the worker for one rank of a job
    assert env["SLURM_JOB_ID"] == "77" and env["HF_HUB_OFFLINE"] == "1" and env[WORKER_ENV] == "1"
    assert env["CUDA_VISIBLE_DEVICES"] == ""


def test_each_job_is_acknowledged_only_after_it_ran(capsys):
    jobs = [WorkerJob(1, "a", "/r/a.json"), WorkerJob(1, "b", "/r/b.json")]
    lines = [job.to_line() for job in jobs] + ["\n"]
    ran, acknowledged = [], []
    for job in worker_jobs(lines):
        acknowledged += capsys.readouterr().out.splitlines()
        assert acknowledged == [f"{JOB_DONE} {done.classifier}" for done in ran]  # each after it ran, not before
        ran.append(job)
    assert ran == jobs
    assert acknowledged + capsys.readouterr().out.splitlines() == [f"{JOB_DONE} a", f"{JOB_DONE} b"]


def test_the_gpus_asked_for_are_read_as_lightning_reads_trainer_devices():
    from simulation.classifier_workers import requested_gpus

    seen = ["4", "5", "6", "7"]
    assert requested_gpus(2, seen) == [0, 1] and requested_gpus("3", seen) == [0, 1, 2]
    assert requested_gpus("1,3", seen) == [1, 3] and requested_gpus([0, 2], seen) == [0, 2]
    assert requested_gpus("auto", seen) == [0, 1, 2, 3] == requested_gpus(-1, seen)
    with pytest.raises(ConfigError) as error:  # a SLURM task that sees only its own GPU, asked for the node's 8
        requested_gpus(8, ["3"])
    assert "this process sees 1 GPU(s) (CUDA_VISIBLE_DEVICES=3)" in str(error.value)
    assert "loop.classifier_parallelism sequential" in str(error.value)


class FakeProcess:
    """What ``_Worker`` reads of a process: its pid and its output lines."""

    def __init__(self, lines):
        self.pid, self.stdout = 4321, iter(lines)


def reports(worker_output) -> tuple[list, list[str]]:
    done = queue.Queue()
    worker = classifier_workers._Worker(WorkerSlot("CPU", "cpu", {}), FakeProcess(worker_output), done)
    worker.reader.join(timeout=10)
    got = []
    while not done.empty():
        got.append(done.get()[1])
    return got, list(worker.tail)


def test_a_finished_job_is_seen_even_after_an_unfinished_line_and_the_end_always_reported(capsys):
    got, tail = reports(["epoch 3 progress " + JOB_DONE + " a\n", "error: something\n"])
    assert got == ["a", None]  # the job, then the end of the output
    assert tail == ["epoch 3 progress ", "error: something"]
    assert capsys.readouterr().out == "[worker 4321] epoch 3 progress \n[worker 4321] error: something\n"


def test_an_output_that_cannot_be_written_costs_the_lines_never_the_reports(monkeypatch):
    class Closed:
        def write(self, text):
            raise OSError("broken pipe")

        def flush(self):
            raise OSError("broken pipe")

    monkeypatch.setattr(classifier_workers.sys, "stdout", Closed())
    got, _ = reports(["a line\n", JOB_DONE + " b\n"])
    assert got == ["b", None]
