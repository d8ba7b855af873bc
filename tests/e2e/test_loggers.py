"""The user's loggers beside TensorBoard (loop.loggers): a tiny run with CSV and MLflow (a local sqlite store) shows
the same per-generation accuracy in all three, read back; W&B runs offline. MLflow and W&B are optional extras:
their tests skip with the reason when the package is absent."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from simulation.config import LoggerConfig
from simulation.loggers import StageLoggers, logger_problems
from tests.e2e.test_cli import TINY, read_rows, run_cli
from tests.in_process import run_cli_here

HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None
HAS_WANDB = importlib.util.find_spec("wandb") is not None
NO_MLFLOW = "mlflow is not installed (pip install -e '.[mlflow]')"
NO_WANDB = "wandb is not installed (pip install -e '.[wandb]')"


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("loggers") / "quick" / "seed_0"
    loggers = [{"kind": "csv"}, *([{"kind": "mlflow"}] if HAS_MLFLOW else [])]
    proc = run_cli("fit", "--config", TINY, "--loop.generations", "1", "--loop.run_dir", str(run_dir),
                   "--loop.loggers", json.dumps(loggers))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return run_dir


def _tensorboard_accuracy(run_dir: Path) -> dict[int, float]:
    events = EventAccumulator(str(run_dir / "tensorboard" / "summary"))
    events.Reload()
    return {e.step: e.value for e in events.Scalars("tiny_cnn/acc")}


def _csv_rows(path: Path) -> list[dict]:
    with path.open() as file:
        return list(csv.DictReader(file))


def test_csv_holds_every_stage_and_the_same_per_generation_accuracy_as_tensorboard(logged_run):
    expected = {row["generation"]: row["acc"] for row in read_rows(logged_run)}
    assert set(expected) == {0, 1}
    tensorboard = _tensorboard_accuracy(logged_run)
    from_csv = {}
    for generation in (0, 1):
        (row,) = _csv_rows(logged_run / "csv" / f"gen_{generation:02d}" / "summary" / "metrics.csv")
        from_csv[int(row["step"])] = float(row["tiny_cnn/acc"])
    assert from_csv == pytest.approx(expected, abs=1e-6) and tensorboard == pytest.approx(expected, abs=1e-6)
    stages = sorted(p.name for p in (logged_run / "csv" / "gen_01").iterdir())
    assert stages == ["generator", "summary", "tiny_cnn", "tiny_cnn_test"]
    training = _csv_rows(logged_run / "csv" / "gen_00" / "tiny_cnn" / "metrics.csv")
    assert {"train/loss", "train/acc", "val/loss", "val/acc"} <= set(training[0])
    test = _csv_rows(logged_run / "csv" / "gen_01" / "tiny_cnn_test" / "metrics.csv")
    assert float(test[-1]["test/acc"]) == pytest.approx(expected[1], abs=1e-6)
    assert {"train/d_loss", "train/g_loss"} <= set(_csv_rows(logged_run / "csv" / "gen_01" / "generator" /
                                                            "metrics.csv")[0])
    hparams = (logged_run / "csv" / "gen_01" / "tiny_cnn" / "hparams.yaml").read_text()
    assert "synthetic_share: 0.5" in hparams and "seed: 0" in hparams and "stack_generations: 1" in hparams


@pytest.mark.skipif(not HAS_MLFLOW, reason=NO_MLFLOW)
def test_mlflow_holds_every_stage_and_the_same_per_generation_accuracy(logged_run):
    import mlflow

    expected = {row["generation"]: row["acc"] for row in read_rows(logged_run)}
    client = mlflow.tracking.MlflowClient(f"sqlite:///{logged_run / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("genbias")
    runs = client.search_runs([experiment.experiment_id])
    names = sorted(r.info.run_name for r in runs)
    assert names == sorted(f"quick/seed_0/gen_{g}/{s}" for g, stages in
                           (("00", ("tiny_cnn", "tiny_cnn_test", "summary")),
                            ("01", ("generator", "tiny_cnn", "tiny_cnn_test", "summary"))) for s in stages)
    summaries = [r for r in runs if r.data.tags.get("stage") == "summary"]
    from_mlflow = {m.step: m.value for r in summaries for m in client.get_metric_history(r.info.run_id, "tiny_cnn/acc")}
    assert from_mlflow == pytest.approx(expected, abs=1e-6)
    assert from_mlflow == pytest.approx(_tensorboard_accuracy(logged_run), abs=1e-6)
    stage = next(r for r in runs if r.info.run_name == "quick/seed_0/gen_01/tiny_cnn")
    assert stage.data.params["synthetic_share"] == "0.5" and stage.data.params["seed"] == "0"
    assert stage.data.tags["generation"] == "gen_01" and stage.data.tags["run"] == "quick/seed_0"
    assert "val/loss" in stage.data.metrics


def test_the_summary_is_appended_and_a_resume_writes_only_what_is_missing(logged_run):
    files = sorted((logged_run / "tensorboard" / "summary").iterdir())
    state = json.loads((logged_run / "state.json").read_text())
    assert state["summary_generations"] == [0, 1]
    assert len(files) == 2  # one events file per generation appended, none rewritten
    proc = run_cli_here("fit", "--config", TINY, "--loop.generations", "1", "--loop.run_dir",
                        str(logged_run), "--loop.loggers", '[{"kind": "csv"}]')  # a resume with other loggers
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted((logged_run / "tensorboard" / "summary").iterdir()) == files
    assert len(_tensorboard_accuracy(logged_run)) == 2


def test_a_logger_that_is_not_installed_is_refused_before_any_work(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else
                        real_find_spec(name, *a))
    assert logger_problems([LoggerConfig(kind="csv"), LoggerConfig(kind="wandb")]) == [
        "loop.loggers: wandb is not installed: pip install -e '.[wandb]' (or drop it)"]


@pytest.mark.skipif(not HAS_WANDB, reason=NO_WANDB)
def test_wandb_runs_are_named_by_run_generation_and_stage_and_stay_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    loggers = StageLoggers([LoggerConfig(kind="wandb")], tmp_path, "quick/seed_0", {"seed": 0})
    logger = loggers._build(loggers.specs[0], "gen_01", "tiny_cnn")
    assert logger._wandb_init["name"] == "quick/seed_0/gen_01/tiny_cnn"
    assert logger._wandb_init["group"] == "quick/seed_0" and logger._offline
    loggers.log_summary(1, {"tiny_cnn/acc": 0.5})
    offline = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("run-*.wandb"))
