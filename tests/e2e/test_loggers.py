"""The user's loggers beside TensorBoard (loop.loggers), shaped like the study: one tracker run per run directory
whose series are indexed by the generation, the stages nested under it.

A tiny run with CSV and MLflow (a local sqlite store) is interrupted in its first generator stage, then resumed: the
resume adds to the same MLflow parent run, and CSV, MLflow and TensorBoard hold the same per-generation accuracy as
results.jsonl, read back with their own readers (the MLflow client). W&B runs offline. MLflow and W&B are optional
extras: their tests skip with the reason when the package is absent."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from records.run_directory import RunDirectory
from simulation.config import LoggerConfig
from simulation.loggers import (
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_QUIET,
    StageLoggers,
    logger_problems,
    probe_logger_settings,
    yaml_safe,
)
from simulation.stages import TrainGenerator
from tests.e2e.test_cli import ROOT, TINY, read_rows
from tests.in_process import run_cli_here

HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None
HAS_WANDB = importlib.util.find_spec("wandb") is not None
NO_MLFLOW = "mlflow is not installed (pip install -e '.[mlflow]')"
NO_WANDB = "wandb is not installed (pip install -e '.[wandb]')"
STAGES = {0: ["tiny_cnn", "tiny_cnn_test"], 1: ["generator", "tiny_cnn", "tiny_cnn_test"]}


class Interrupted(RuntimeError):
    pass


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory) -> tuple[Path, dict]:
    """A run interrupted in generation 1's generator stage (after generation 0 and its summary), then resumed; and
    the tracker runs ``state.json`` named after the interrupted launch."""
    run_dir = tmp_path_factory.mktemp("loggers") / "quick" / "seed_0"
    loggers = [{"kind": "csv"}, *([{"kind": "mlflow"}] if HAS_MLFLOW else [])]
    command = ("fit", "--config", TINY, "--loop.generations", "1", "--loop.run_dir", str(run_dir),
               "--loop.loggers", json.dumps(loggers))

    def interrupt(self, context):
        raise Interrupted("the generator stage was interrupted")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TrainGenerator, "execute", interrupt)
        with pytest.raises(Interrupted):
            run_cli_here(*command)
    after_interruption = json.loads((run_dir / "state.json").read_text())
    assert after_interruption["summary_generations"] == [0]
    tracker_runs = after_interruption.get("tracker_runs", {})
    if HAS_MLFLOW:  # the interrupted launch marked its run failed
        from mlflow.tracking import MlflowClient

        parent = MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}").get_run(tracker_runs["mlflow default genbias"])
        assert parent.info.status == "FAILED"
    proc = run_cli_here(*command)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return run_dir, tracker_runs


def _tensorboard_accuracy(run_dir: Path) -> dict[int, float]:
    events = EventAccumulator(str(run_dir / "tensorboard" / "summary"))
    events.Reload()
    return {e.step: e.value for e in events.Scalars("tiny_cnn/acc")}


def _csv_rows(path: Path) -> list[dict]:
    with path.open() as file:
        return list(csv.DictReader(file))


def test_csv_holds_one_summary_table_per_run_and_a_folder_per_stage(logged_run):
    run_dir, _ = logged_run
    rows = read_rows(run_dir)
    expected = {row["generation"]: row["acc"] for row in rows}
    assert set(expected) == {0, 1}
    summary = _csv_rows(run_dir / "csv" / "summary.csv")
    assert [int(row["generation"]) for row in summary] == [0, 1]  # one table, a row per generation, in order
    assert {int(r["generation"]): float(r["tiny_cnn/acc"]) for r in summary} == pytest.approx(expected, abs=1e-6)
    assert _tensorboard_accuracy(run_dir) == pytest.approx(expected, abs=1e-6)
    assert float(summary[1]["generator/fid"]) == pytest.approx(rows[1]["fid"], abs=1e-6)
    assert summary[0]["generator/fid"] == ""  # generation 0 has no generated block
    assert sorted(p.name for p in (run_dir / "csv").iterdir()) == ["gen_00", "gen_01", "summary.csv"]
    for generation, stages in STAGES.items():
        assert sorted(p.name for p in (run_dir / "csv" / f"gen_{generation:02d}").iterdir()) == stages
    training = _csv_rows(run_dir / "csv" / "gen_00" / "tiny_cnn" / "metrics.csv")
    assert {"train/loss", "train/acc", "val/loss", "val/acc"} <= set(training[0])
    test = _csv_rows(run_dir / "csv" / "gen_01" / "tiny_cnn_test" / "metrics.csv")
    assert float(test[-1]["test/acc"]) == pytest.approx(expected[1], abs=1e-6)
    assert {"train/d_loss", "train/g_loss"} <= set(_csv_rows(run_dir / "csv" / "gen_01" / "generator" /
                                                            "metrics.csv")[0])


def test_every_hparams_yaml_loads_with_safe_load(logged_run):
    run_dir, _ = logged_run
    files = sorted(run_dir.glob("csv/gen_*/*/hparams.yaml")) + sorted(run_dir.glob("tensorboard/gen_*/*/hparams.yaml"))
    assert len(files) >= 7
    for path in files:
        assert "!!python" not in path.read_text(), path
        assert isinstance(yaml.safe_load(path.read_text()), dict), path
    generator = yaml.safe_load((run_dir / "csv" / "gen_01" / "generator" / "hparams.yaml").read_text())
    assert generator["image_shape"] == [3, 28, 28] and generator["betas"] == [0.5, 0.999]  # tuples, as lists
    assert generator["synthetic_share"] == 0.5 and generator["seed"] == 0 and generator["window"] == 1


def test_yaml_safe_turns_what_safe_load_refuses_into_what_it_reads():
    from enum import Enum

    class Mode(Enum):
        FIFO = "fifo"

    value = {"shape": (3, 28, 28), "nested": {"betas": (0.5, 0.999), "path": Path("/x/y")}, "mode": Mode.FIFO,
             "tags": {"b", "a"}, "none": None, 3: True}
    assert yaml_safe(value) == {"shape": [3, 28, 28], "nested": {"betas": [0.5, 0.999], "path": "/x/y"},
                                "mode": "fifo", "tags": ["a", "b"], "none": None, "3": True}
    assert yaml.safe_load(yaml.dump(yaml_safe(value))) == yaml_safe(value)


@pytest.mark.skipif(not HAS_MLFLOW, reason=NO_MLFLOW)
def test_mlflow_holds_one_run_per_run_directory_with_the_stages_nested_and_a_series_over_generations(logged_run):
    from mlflow.tracking import MlflowClient

    run_dir, before_resume = logged_run
    expected = {row["generation"]: row["acc"] for row in read_rows(run_dir)}
    client = MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("genbias").experiment_id])
    parents = [r for r in runs if MLFLOW_PARENT_RUN_ID not in r.data.tags]
    assert len(parents) == 1  # one for the run directory, reused by the resume
    (parent,) = parents
    assert parent.info.run_name == "quick/seed_0" and parent.info.status == "FINISHED"
    assert before_resume == {"mlflow default genbias": parent.info.run_id}
    assert json.loads((run_dir / "state.json").read_text())["tracker_runs"] == before_resume
    history = client.get_metric_history(parent.info.run_id, "tiny_cnn/acc")
    assert sorted(m.step for m in history) == [0, 1]  # one point per generation, the interrupted one not doubled
    assert {m.step: m.value for m in history} == pytest.approx(expected, abs=1e-6)
    assert {m.step: m.value for m in history} == pytest.approx(_tensorboard_accuracy(run_dir), abs=1e-6)
    assert [m.step for m in client.get_metric_history(parent.info.run_id, "generator/fid")] == [1]
    assert parent.data.params["synthetic_share"] == "0.5" and parent.data.params["seed"] == "0"

    children = [r for r in runs if r.data.tags.get(MLFLOW_PARENT_RUN_ID) == parent.info.run_id]
    assert len(children) == len(runs) - 1  # every other run is a stage nested under it
    names = [r.info.run_name for r in children]  # gen 0's stages by the first launch, gen 1's by the resume
    assert sorted(names) == sorted(f"quick/seed_0/gen_{g:02d}/{s}" for g, stages in STAGES.items() for s in stages)
    stage = next(r for r in children if r.info.run_name == "quick/seed_0/gen_01/tiny_cnn")
    assert stage.data.tags["generation"] == "gen_01" and stage.data.tags["run"] == "quick/seed_0"
    assert stage.data.tags["stage"] == "tiny_cnn" and "val/loss" in stage.data.metrics
    assert not any(r.data.tags.get("stage") == "summary" for r in runs)  # no one-point summary runs any more


def test_the_summary_is_appended_and_a_resume_writes_only_what_is_missing(logged_run):
    run_dir, _ = logged_run
    files = sorted((run_dir / "tensorboard" / "summary").iterdir())
    state = json.loads((run_dir / "state.json").read_text())
    assert state["summary_generations"] == [0, 1]
    assert len(files) == 2  # one events file per generation appended (one per launch), none rewritten
    table = (run_dir / "csv" / "summary.csv").read_text()
    proc = run_cli_here("fit", "--config", TINY, "--loop.generations", "1", "--loop.run_dir",
                        str(run_dir), "--loop.loggers", '[{"kind": "csv"}]')  # a resume with other loggers
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted((run_dir / "tensorboard" / "summary").iterdir()) == files
    assert len(_tensorboard_accuracy(run_dir)) == 2
    assert (run_dir / "csv" / "summary.csv").read_text() == table


def test_the_csv_table_gains_and_replaces_rows_by_generation(tmp_path):
    loggers = StageLoggers([LoggerConfig(kind="csv")], RunDirectory(tmp_path), "quick/seed_0", {"seed": 0})
    loggers.log_summary({0: {"lenet/acc": 0.9}})
    loggers.log_summary({2: {"lenet/acc": 0.7, "generator/fid": 40.0}, 1: {"lenet/acc": 0.8}})
    loggers.log_summary({1: {"lenet/acc": 0.85}})
    assert (tmp_path / "csv" / "summary.csv").read_text().splitlines() == [
        "generation,generator/fid,lenet/acc", "0,,0.9", "1,,0.85", "2,40.0,0.7"]


@pytest.mark.skipif(not HAS_MLFLOW, reason=NO_MLFLOW)
def test_a_generation_logged_again_after_a_crash_is_not_doubled_and_a_new_launch_finds_the_parent(tmp_path,
                                                                                                    monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv(MLFLOW_QUIET, raising=False)

    run_dir = RunDirectory(tmp_path)
    first = StageLoggers([LoggerConfig(kind="mlflow")], run_dir, "quick/seed_0", {"seed": 0})
    first.log_summary({0: {"lenet/acc": 0.9, "lenet/meo": 0.95}})
    first.finish(RuntimeError("stopped"))  # before state.json recorded generation 0's summary
    again = StageLoggers([LoggerConfig(kind="mlflow")], RunDirectory(tmp_path), "quick/seed_0", {"seed": 0})
    again.run_dir.load()
    again.log_summary({0: {"lenet/acc": 0.9, "lenet/meo": 0.95}, 1: {"lenet/acc": 0.8, "lenet/meo": 0.9}})
    stage = again._build(again.specs[0], "gen_01", "lenet")
    assert stage.tags[MLFLOW_PARENT_RUN_ID] == run_dir.tracker_run("mlflow default genbias")
    assert os.environ[MLFLOW_QUIET] == "true"  # a tracking server's "View run" lines stay out of the progress lines
    again.finish(SystemExit(0))  # a pause for a manual review: still running, the resume continues it
    assert MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(
        run_dir.tracker_run("mlflow default genbias")).info.status == "RUNNING"
    again.finish()
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("genbias").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "quick/seed_0"
    history = client.get_metric_history(run.info.run_id, "lenet/acc")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.9), (1, 0.8)]


def test_a_logger_that_is_not_installed_is_refused_before_any_work(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else
                        real_find_spec(name, *a))
    assert logger_problems([LoggerConfig(kind="csv"), LoggerConfig(kind="wandb")]) == [
        "loop.loggers: wandb is not installed: pip install -e '.[wandb]' (or drop it)"]


@pytest.mark.skipif(not HAS_WANDB, reason=NO_WANDB)
def test_wandb_stages_are_grouped_by_run_and_the_run_has_one_offline_run_over_generations(tmp_path, monkeypatch,
                                                                                           capfd):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    run_dir = RunDirectory(tmp_path)
    loggers = StageLoggers([LoggerConfig(kind="wandb")], run_dir, "quick/seed_0", {"seed": 0})
    logger = loggers._build(loggers.specs[0], "gen_01", "tiny_cnn")
    assert logger._wandb_init["name"] == "quick/seed_0/gen_01/tiny_cnn"
    assert logger._wandb_init["group"] == "quick/seed_0" and logger._wandb_init["job_type"] == "tiny_cnn"
    assert logger._offline and logger._wandb_init["settings"].silent
    loggers.log_summary({0: {"tiny_cnn/acc": 0.9}, 1: {"tiny_cnn/acc": 0.5}})
    run_id = run_dir.tracker_run("wandb genbias")
    assert json.loads((tmp_path / "state.json").read_text())["tracker_runs"] == {"wandb genbias": run_id}
    loggers.log_summary({2: {"tiny_cnn/acc": 0.4}})  # a later generation (or a resume): the same W&B run
    offline = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(p.name.endswith(f"-{run_id}") for p in offline)
    assert all(list(p.glob(f"run-{run_id}.wandb")) for p in offline)
    out, err = capfd.readouterr()
    assert "wandb" not in (out + err).lower()  # quiet: nothing of W&B's among the progress lines


@pytest.fixture
def health_server():
    """A local HTTP server that answers like an MLflow server's /health (127.0.0.1 only)."""
    import http.server
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_probe_names_each_bad_logger_setting_without_creating_anything(tmp_path, monkeypatch, health_server):
    server = health_server  # answers: no problem; a port where nothing listens: one line (tests/e2e/test_workflow.py)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    for variable in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.chdir(tmp_path)
    assert probe_logger_settings([LoggerConfig(kind="csv"), LoggerConfig(kind="mlflow"),
                                  LoggerConfig(kind="mlflow", tracking_uri="sqlite:///mlflow.db"),
                                  LoggerConfig(kind="mlflow", tracking_uri=server),
                                  LoggerConfig(kind="wandb", offline=True)]) == []
    problems = probe_logger_settings([
        LoggerConfig(kind="mlflow", tracking_uri=f"file:{tmp_path / 'mlruns'}"),
        LoggerConfig(kind="mlflow", tracking_uri="./mlruns"),
        LoggerConfig(kind="mlflow", tracking_uri="sqlite:///missing/folder/mlflow.db"),
        LoggerConfig(kind="mlflow", tracking_uri="htp://host:5000"),
        LoggerConfig(kind="mlflow", tracking_uri="http://"),
        LoggerConfig(kind="wandb"),
        LoggerConfig(kind="csv", experiment=" ")])
    assert [p.split(":")[0] for p in problems] == [f"loop.loggers[{i}] ({kind})" for i, kind in
                                                   enumerate(["mlflow"] * 5 + ["wandb", "csv"])]
    assert "folder store, which MLflow >= 3.7 refuses" in problems[0] and "MLFLOW_ALLOW_FILE_STORE=true" in problems[0]
    assert "folder store" in problems[1]
    assert "the folder missing/folder does not exist" in problems[2]
    assert "scheme 'htp'" in problems[3] and "sqlite" in problems[3]
    assert "names no server" in problems[4]
    assert "no W&B login" in problems[5] and "offline: true" in problems[5]
    assert "experiment is empty" in problems[6]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing created: no store, no folder, no run
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    (tmp_path / "netrc").write_text("machine api.wandb.ai login user password " + "x" * 40 + "\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))  # what `wandb login` writes
    assert probe_logger_settings([LoggerConfig(kind="mlflow", tracking_uri="./mlruns"),
                                  LoggerConfig(kind="wandb")]) == []
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert probe_logger_settings([LoggerConfig(kind="wandb")]) == []
    monkeypatch.setenv("WANDB_MODE", "ofline")
    assert probe_logger_settings([LoggerConfig(kind="wandb", offline=True)]) == [
        "loop.loggers[0] (wandb): WANDB_MODE='ofline' is not a W&B mode: use one of online, offline, disabled, "
        "dryrun, run, shared, or unset it"]


def test_a_sqlite_store_in_a_folder_that_cannot_be_written_is_refused(tmp_path, monkeypatch):
    (tmp_path / "locked").mkdir()
    uri = f"sqlite:///{tmp_path / 'locked' / 'mlflow.db'}"
    assert probe_logger_settings([LoggerConfig(kind="mlflow", tracking_uri=uri)]) == []
    real_access = os.access  # as root os.access is always true: the folder is made unwritable through it
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != tmp_path / "locked" and
                        real_access(path, mode, **kw))
    assert probe_logger_settings([LoggerConfig(kind="mlflow", tracking_uri=uri)]) == [
        f"loop.loggers[0] (mlflow): tracking_uri {uri!r}: cannot write in {tmp_path / 'locked'}: choose a folder "
        "you can write to"]


def test_a_server_whose_certificate_the_system_store_does_not_trust_counts_as_answering(monkeypatch):
    import ssl
    import urllib.error
    import urllib.request

    def refuse(error):
        def urlopen(url, timeout):
            raise error
        return urlopen

    uri = "https://mlflow.lab.internal:5000"
    untrusted = urllib.error.URLError(ssl.SSLCertVerificationError(1, "certificate verify failed"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse(untrusted))  # MLflow's client reads the lab's CA bundle
    assert probe_logger_settings([LoggerConfig(kind="mlflow", tracking_uri=uri)]) == []
    monkeypatch.setattr(urllib.request, "urlopen", refuse(urllib.error.URLError(ConnectionRefusedError(111, "no"))))
    assert probe_logger_settings([LoggerConfig(kind="mlflow", tracking_uri=uri)]) == [
        f"loop.loggers[0] (mlflow): cannot reach the MLflow server at {uri} ([Errno 111] no): start it, fix "
        "tracking_uri, or drop this logger"]


def test_a_tracking_uri_s_credentials_are_masked_in_the_state_key(tmp_path):
    uri = "https://alice:s3cr3t@mlflow.lab:5000"
    loggers = StageLoggers([LoggerConfig(kind="mlflow", tracking_uri=uri)], RunDirectory(tmp_path), "q/seed_0", {})
    key = loggers._mlflow_key(loggers.specs[0])
    assert key == "mlflow https://***@mlflow.lab:5000 genbias" and "s3cr3t" not in key
    assert loggers._tracking_uri_of_key(key) == uri  # the run is still closed in the store it was opened in


def test_a_bad_tracking_uri_is_refused_before_the_run_directory_exists(tmp_path):
    run_dir = tmp_path / "quick" / "seed_0"
    proc = run_cli_here("fit", "--config", TINY, "--loop.run_dir", str(run_dir),
                        "--loop.loggers", '[{"kind": "mlflow", "tracking_uri": "htp://host:5000"}]')
    assert proc.returncode == 2 and "loop.loggers[0] (mlflow): tracking_uri 'htp://host:5000'" in proc.stderr
    assert "Traceback" not in proc.stderr and not run_dir.exists()


@pytest.mark.skipif(not HAS_WANDB, reason=NO_WANDB)
def test_a_run_with_wandb_prints_no_wandb_line_among_its_progress_lines(tmp_path):
    run_dir = tmp_path / "quick" / "seed_0"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "WANDB_MODE": "offline"}
    env.pop("WANDB_SILENT", None)
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "fit", "--config", TINY, "--loop.generations", "1",
                           "--loop.run_dir", str(run_dir), "--loop.loggers", '[{"kind": "wandb"}]'], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = (proc.stdout + proc.stderr).replace(str(tmp_path), "<tmp>").splitlines()  # (the test's name says wandb)
    assert not [line for line in lines if "wandb" in line.lower()]
    assert sum("[genbias]" in line for line in lines) >= 20  # the progress lines are all there is
    run_id = json.loads((run_dir / "state.json").read_text())["tracker_runs"]["wandb genbias"]
    offline = sorted(p.name for p in (run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 5 + 2  # a run per stage (grouped by the run), and the run's own, opened per generation
    assert sum(name.endswith(f"-{run_id}") for name in offline) == 2
