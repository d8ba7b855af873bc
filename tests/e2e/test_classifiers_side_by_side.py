"""Classifiers side by side (``loop.classifier_parallelism: devices``) through ``cli.py fit`` in subprocesses: the
rows of a sequential run bit for bit at the same threads per classifier, and a worker killed in the middle of its
stage ends the launch with one line, keeps what finished, and the relaunch trains only the unfinished classifier.

Every launch here runs at one torch thread (``OMP_NUM_THREADS=1``): the sequential run's stages at 1 thread, the
side-by-side run's generator at 1 thread and each worker at 1 (``worker_slots`` divides the launch's threads between
as many workers as cores, at least one each)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.in_process import run_cli_here
from tests.session_once import once_per_session

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "configs" / "tiny_mnist.yaml"
TWO = ROOT / "tests" / "configs" / "tiny_two_classifiers.yaml"


def env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def command(run_dir: Path, parallelism: str) -> list[str]:
    return [sys.executable, str(ROOT / "cli.py"), "fit", "--config", str(TINY), "--config", str(TWO),
            "--loop.run_dir", str(run_dir), "--loop.classifier_parallelism", parallelism]


def fit(run_dir: Path, parallelism: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(command(run_dir, parallelism), cwd=ROOT, env=env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def rows(run_dir: Path) -> list[dict]:
    """The result rows without the wall time, the one field that is not computed from the data."""
    return [{k: v for k, v in json.loads(line).items() if k != "wall_s"}
            for line in (run_dir / "results.jsonl").read_text().splitlines()]


def state(run_dir: Path) -> dict:
    return json.loads((run_dir / "state.json").read_text())


@pytest.fixture(scope="module")
def sequential_run(tmp_path_factory) -> Path:
    folder = once_per_session(tmp_path_factory, "two_classifiers_sequential",
                              lambda folder: fit(folder / "run", "sequential"))
    return folder / "run"


def test_side_by_side_classifiers_give_the_sequential_rows_bit_for_bit(sequential_run, tmp_path):
    run_dir = tmp_path / "side_by_side"
    check = run_cli_here(*command(run_dir, "devices")[2:], "--check")
    assert check.returncode == 0, check.stderr
    assert "classifiers: side by side (loop.classifier_parallelism: devices)" in check.stdout
    assert not run_dir.exists()  # a check writes nothing
    proc = fit(run_dir, "devices")
    assert rows(run_dir) == rows(sequential_run)  # exact: same threads, same kernels, same seeds per stage
    assert state(run_dir)["completed"] == state(sequential_run)["completed"]  # recorded in the classifiers' order
    assert [row["generation"] for row in rows(run_dir)] == [0, 0, 1, 1]
    out = proc.stdout
    assert "training a, b side by side on" in out and "classifier workers started" in out
    assert out.count("classifier workers started") == 1  # one pool per launch, for both generations
    assert re.search(r"^\[b\] .*generation 1/1 - training b on", out, re.MULTILINE)  # the workers' lines, prefixed
    for name in ("a", "b"):
        log = run_dir / "gen_01" / "classifiers" / name / "worker.log"
        assert f"training {name} on" in log.read_text()
        assert not (run_dir / "gen_01" / "classifiers" / name / "worker_record.json").exists()  # adopted


def test_a_killed_worker_ends_the_launch_in_one_line_and_the_relaunch_trains_only_the_unfinished(sequential_run,
                                                                                                  tmp_path):
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(command(run_dir, "devices"), cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    worker_of, killed = {}, None
    for line in proc.stdout:
        found = re.search(r"generation 1: (\w+) on worker (\d+)", line)
        if found:
            worker_of[found[1]] = int(found[2])
        if re.match(r"\[b\] .*generation 1/1 - b: epoch 2/40 done", line):
            killed = worker_of["b"]
            os.kill(killed, signal.SIGKILL)  # in the middle of g1/classifier/b
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert killed is not None, err[-2000:]
    assert proc.returncode == 1, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"classifier worker b (pid {killed}" in err and "was killed by SIGKILL during stage g1/classifier/b" in err
    assert "finished and recorded: a;" in err and "unfinished classifier(s) b" in err
    recorded = state(run_dir)["completed"]
    assert "g1/evaluate/a" in recorded and "g1/classifier/b" not in recorded  # nothing that finished is lost
    stage_b = run_dir / "gen_01" / "classifiers" / "b" / "checkpoints"
    assert (stage_b / "last.ckpt").exists()  # b resumes from its last epoch
    a_checkpoint = run_dir / "gen_01" / "classifiers" / "a" / "checkpoints" / "best.ckpt"
    a_written = a_checkpoint.stat().st_mtime_ns

    relaunch = fit(run_dir, "devices")
    assert "training b side by side" in relaunch.stdout
    assert "training a" not in relaunch.stdout and "[a]" not in relaunch.stdout  # a is not trained again
    assert a_checkpoint.stat().st_mtime_ns == a_written
    assert rows(run_dir) == rows(sequential_run)  # as if never killed


def test_under_ddp_the_other_ranks_wait_for_the_side_by_side_classifiers(sequential_run, tmp_path):
    """A 2-process CPU DDP launch: the generator trains on both ranks, the classifiers on rank 0's workers while
    rank 1 waits for their records (no collective, which would time out in hours-long stages). With the CSV and
    MLflow loggers: each worker's stages land under the run's one tracker run, as in a sequential run."""
    run_dir = tmp_path / "ddp"
    loggers = [{"kind": "csv"}, *([{"kind": "mlflow"}] if importlib.util.find_spec("mlflow") else [])]
    proc = subprocess.run([*command(run_dir, "devices"), "--trainer.devices", "2", "--trainer.strategy", "ddp",
                           "--loop.loggers", json.dumps(loggers)], cwd=ROOT, env=env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "generation 1/1 - training a, b side by side" in proc.stdout
    got, reference = rows(run_dir), rows(sequential_run)
    assert [(r["generation"], r["classifier"]) for r in got] == [(0, "a"), (0, "b"), (1, "a"), (1, "b")]
    assert got[:2] == reference[:2]  # generation 0 is classifiers only: the same workers' rows
    for stage in ("a", "b", "a_test", "b_test"):
        assert (run_dir / "csv" / "gen_01" / stage / "metrics.csv").is_file(), stage
    if len(loggers) == 2:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}")
        runs = client.search_runs([client.get_experiment_by_name("genbias").experiment_id], max_results=100)
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        assert len(parents) == 1  # no worker opened a tracker run of its own
        nested = {r.info.run_name.rsplit("/", 2)[-2] + "/" + r.info.run_name.rsplit("/", 1)[-1] for r in runs
                  if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id}
        assert {"gen_00/a", "gen_00/b_test", "gen_01/b", "gen_01/generator"} <= nested
        assert {r.info.status for r in runs} == {"FINISHED"}
