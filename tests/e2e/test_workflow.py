"""The daily loop around a run (docs/workflow.md): the saved config re-runs its run, --check writes nothing, the
logger settings are probed before any stage, every parser mistake says where it is and what was meant, smoke runs
and near-chance classifiers are flagged, and every stage records its command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.in_process import run_cli_here

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "configs" / "tiny_mnist.yaml")


@pytest.fixture(scope="module")
def generation_zero_run(tmp_path_factory) -> Path:
    """``cli.py fit --config tiny_mnist.yaml --loop.generations 0``: one classifier trained and evaluated."""
    run_dir = tmp_path_factory.mktemp("workflow") / "run"
    proc = run_cli_here("fit", "--config", TINY, "--loop.generations", "0", "--loop.run_dir", str(run_dir))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run_dir / "stdout.txt").write_text(proc.stdout)  # (not a file of the run: read by the tests below)
    return run_dir


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------------------ the saved config re-runs
def test_the_saved_config_resumes_its_own_run_from_any_folder(generation_zero_run, tmp_path):
    """The saved config.yaml holds null for the settings that are not part of the run's identity (data.num_workers,
    trainer.devices, ...) and no run_dir; re-running it resumes the run it was saved in, wherever the command runs."""
    run = tmp_path / "moved_run"
    shutil.copytree(generation_zero_run, run)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["num_workers"] is None and saved["loop"]["run_dir"] is None
    before = (run / "results.jsonl").read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run_cli_here("fit", "--config", str(run / "config.yaml"), cwd=elsewhere)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"resuming {run}: 2 stages done" in proc.stdout
    assert (run / "results.jsonl").read_text() == before
    assert list(elsewhere.iterdir()) == []  # no runs/config/seed_0 beside it


def test_the_saved_config_reproduces_the_run_in_a_new_folder(generation_zero_run, tmp_path):
    """On another machine (here: another folder), the saved config with a new loop.run_dir computes the same rows."""
    proc = run_cli_here("fit", "--config", str(generation_zero_run / "config.yaml"), "--loop.run_dir",
                        str(tmp_path / "again"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    drop = ("wall_s",)
    again, first = _rows(tmp_path / "again"), _rows(generation_zero_run)
    assert [{k: v for k, v in r.items() if k not in drop} for r in again] == \
        [{k: v for k, v in r.items() if k not in drop} for r in first]
    assert (tmp_path / "again" / "config.yaml").read_text() == (generation_zero_run / "config.yaml").read_text()


# ------------------------------------------------------------------------------------------------------- --check
def test_check_prints_the_plan_and_writes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli_here("fit", "--config", TINY, "--loop.run_dir", str(run_dir), "--check", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "check passed: nothing was written" in out and f"run directory: {run_dir} (a new run)" in out
    # generations 0-2, one classifier: 2 stages at generation 0, 3 + 2 at each of generations 1 and 2
    assert "stages: 12 to run over generations 0-2" in out
    assert "the 2 generation(s) to go add about" in out and "resources: 1 process(es), accelerator cpu" in out
    assert list(tmp_path.iterdir()) == []


def test_check_of_a_finished_run_says_nothing_is_left_and_a_different_config_is_refused(generation_zero_run):
    config = str(generation_zero_run / "config.yaml")
    done = run_cli_here("fit", "--config", config, "--check")
    assert done.returncode == 0 and "(resumes: 2 of 2 stages done)" in done.stdout and "stages: 0 to run" in done.stdout
    refused = run_cli_here("fit", "--config", config, "--classifiers", "[{arch: tiny_cnn, max_epochs: 3}]", "--check")
    assert refused.returncode == 2 and "holds a run with a different config" in refused.stderr


def test_logger_settings_are_probed_before_anything_is_written(tmp_path, monkeypatch):
    """A folder-store MLflow URI (refused by MLflow >= 3.7), a server nobody answers at and W&B online without a
    login are reported together, each naming its logger, before the run directory exists."""
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    loggers = (f"[{{kind: mlflow, tracking_uri: 'file:{tmp_path / 'mlruns'}'}}, "
               "{kind: mlflow, tracking_uri: 'http://127.0.0.1:9'}, {kind: wandb}]")
    run_dir = tmp_path / "run"
    proc = run_cli_here("fit", "--config", TINY, "--loop.run_dir", str(run_dir), "--loop.loggers", loggers)
    assert proc.returncode == 2
    err = proc.stderr
    assert "3 problems in the configuration" in err
    assert "loop.loggers[0] (mlflow): tracking_uri" in err and "MLFLOW_ALLOW_FILE_STORE=true" in err
    assert "loop.loggers[1] (mlflow): cannot reach the MLflow server at http://127.0.0.1:9" in err
    assert "loop.loggers[2] (wandb): W&B is online but no login was found" in err and "offline: true" in err
    assert not run_dir.exists() and not (tmp_path / "mlruns").exists()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    offline = run_cli_here("fit", "--config", TINY, "--loop.run_dir", str(run_dir), "--check", "--loop.loggers",
                           f"[{{kind: mlflow, tracking_uri: 'file:{tmp_path / 'mlruns'}'}}, {{kind: wandb, "
                           "offline: true}]")
    assert offline.returncode == 0, offline.stderr
    assert "loggers: tensorboard, mlflow, wandb" in offline.stdout and not run_dir.exists()


# ----------------------------------------------------------------------------------- messages that say where
@pytest.fixture
def config_files(tmp_path) -> dict[str, Path]:
    texts = {"typo.yaml": "loop:\n  generatons: 3\n",
             "indent.yaml": "loop:\n  generations: 3\n   samples_per_generation: 10\n",
             "classifier.yaml": "classifiers:\n  - arch: tiny_cnn\n    max_epoch: 2\n",
             "source_field.yaml": "data:\n  source:\n    class_path: datamodules.colored_mnist.ColoredMNIST\n"
                                  "    init_args:\n      arch: x\n"}
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
    return {name: tmp_path / name for name in texts}


WHERE_CASES = {
    "class path": (["--model", "lightning_modules.dcgan.ConditionalDCGANN"],
                   "the command line: model: `lightning_modules.dcgan` has no class `ConditionalDCGANN`: did you mean "
                   "`lightning_modules.dcgan.ConditionalDCGAN`?"),
    "module path": (["--model", "lightning_modules.dcgann.ConditionalDCGAN"],
                    "the command line: model: no module `lightning_modules.dcgann` for class path "
                    "`lightning_modules.dcgann.ConditionalDCGAN`: did you mean "
                    "`lightning_modules.dcgan.ConditionalDCGAN`?"),
    "seed": (["--seed_everything", "abc"], "seed_everything: `abc` is not a whole number: give the seed as an integer, "
                                           "e.g. --seed_everything 0"),
    "key in a second config file": (["--config", "{typo.yaml}"],
                                    "{typo.yaml}: loop: unknown field `generatons`: did you mean `generations`"),
    "yaml indentation": (["--config", "{indent.yaml}"],
                         "{indent.yaml} is not valid YAML at line 3, column 26: mapping values are not allowed here"),
    "classifier field": (["--config", "{classifier.yaml}"],
                         "{classifier.yaml}: classifiers[0]: unknown field `max_epoch`: did you mean `max_epochs`?"),
    "classifier field on the command line": (["--classifiers", "[{arch: tiny_cnn, max_epoch: 2}]"],
                                             "the command line (--classifiers): classifiers[0]: unknown field "
                                             "`max_epoch`: did you mean `max_epochs`?"),
    # a name that is a valid field elsewhere (the classifier's `lr`, `arch` in TINY) is located where it is wrong
    "filter field on the command line": (["--filters", "[{class_path: filters.UncertaintyFilter, init_args: "
                                          "{ratio: 0.1, lr: 0.5}}]"],
                                         "the command line (--filters): filters[0].init_args: unknown field `lr` "
                                         "(python"),
    "data source field in a second config file": (["--config", "{source_field.yaml}"],
                                                  "{source_field.yaml}: data.source.init_args: unknown field `arch` "
                                                  "(python"),
    "data source field on the command line": (["--data.source.init_args.arch", "x"],
                                              "the command line: unknown option `--data.source.init_args.arch` "
                                              "(python"),
    # a trainer key the loop owns is never suggested: a name close to one is told why it is refused
    "loop-owned trainer key": (["--trainer.max_epoch", "1"],
                               "the command line: unknown option `--trainer.max_epoch`: `trainer.max_epochs` is not "
                               "used either: each stage sets its own: classifiers[].max_epochs for a classifier, "
                               "loop.generator_epochs for the generator (python"),
    "trainer key nearer a valid one": (["--trainer.min_epoch", "1"],
                                       "the command line: unknown option `--trainer.min_epoch`: did you mean "
                                       "`trainer.min_epochs` or `trainer.min_steps` or `trainer.max_steps`? (python"),
    "command-line key": (["--loop.generatons", "3"],
                         "the command line: unknown option `--loop.generatons`: did you mean `loop.generations`"),
}


@pytest.mark.parametrize("case", list(WHERE_CASES))
def test_every_mistake_is_one_line_that_says_where_and_suggests(case, config_files, tmp_path):
    extra, expected = WHERE_CASES[case]
    names = {f"{{{name}}}": str(path) for name, path in config_files.items()}
    extra = [names.get(arg, arg) for arg in extra]
    for placeholder, path in names.items():
        expected = expected.replace(placeholder, path)
    proc = run_cli_here("fit", "--config", TINY, "--loop.run_dir", str(tmp_path / "run"), *extra)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {expected}") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "run").exists()


def test_fit_alone_points_at_a_config():
    proc = run_cli_here("fit")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: fit needs an experiment config: python cli.py fit --config "
                                  "configs/quickstart.yaml")
    assert (ROOT / "configs" / "quickstart.yaml").is_file()


def test_fit_help_describes_the_command_and_hides_the_refused_trainer_keys(capsys, monkeypatch):
    import cli

    monkeypatch.setenv("COLUMNS", "400")  # no option name wrapped
    with pytest.raises(SystemExit) as exited:
        cli.main(["fit", "--help"])
    assert exited.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Run (or resume) an experiment: the generational loop over one run directory." in out
    assert "--check" in out and "--trainer.accelerator" in out
    for key in ("logger", "max_epochs", "default_root_dir", "enable_checkpointing", "use_distributed_sampler",
                "fast_dev_run"):
        assert f"--trainer.{key} " not in out and f"--trainer.{key}." not in out, key


# ------------------------------------------------------------------------------ smoke runs, chance, provenance
def test_fast_dev_run_is_refused_and_other_smoke_settings_are_warned(tmp_path):
    refused = run_cli_here("fit", "--config", TINY, "--loop.run_dir", str(tmp_path / "run"),
                           "--trainer.fast_dev_run", "true")
    assert refused.returncode == 2 and "trainer.fast_dev_run is not used: a smoke run" in refused.stderr
    assert not (tmp_path / "run").exists()
    warned = run_cli_here("fit", "--config", TINY, "--loop.run_dir", str(tmp_path / "run"), "--check",
                          "--trainer.limit_train_batches", "0.1")
    assert warned.returncode == 0
    assert "smoke settings (trainer.limit_train_batches=0.1)" in warned.stdout
    assert "`cli.py report` refuses to aggregate it, and scripts/sweep.py refuses to start one" in warned.stdout


def test_the_row_and_the_log_flag_a_classifier_near_chance(generation_zero_run):
    (row,) = _rows(generation_zero_run)
    assert row["chance_acc"] == pytest.approx(0.1)  # 10 digit classes
    assert row["near_chance"] == (row["acc"] < 0.15)
    warned = "is within 5% of chance (1/10 = 0.1000)" in (generation_zero_run / "stdout.txt").read_text()
    assert warned == row["near_chance"]


def test_every_stage_records_the_command_line(generation_zero_run):
    state = json.loads((generation_zero_run / "state.json").read_text())
    commands = {e["command_line"] for e in state["environments"]}
    assert commands == {f"cli.py fit --config {TINY} --loop.generations 0 --loop.run_dir {generation_zero_run}"}
    assert all(e["weight_files"] == [] for e in state["environments"])  # tiny_cnn from scratch: no external weights
