"""Through the CLI: configs and runs of the previous release, before the data regime was one section.

A config file or command line that uses an old key is refused in one line naming the new key; a run directory the
previous release wrote resumes from its saved config.yaml under its recorded identity.
"""

import json
from pathlib import Path

import pytest
import yaml

from datamodules.regime_migration import PREVIOUS_KEYS, identity_text
from tests.in_process import run_cli_here

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "configs" / "tiny_mnist.yaml"
PREVIOUS_RELEASE = json.loads((ROOT / "tests" / "fixtures" / "previous_release_configs.json").read_text())
OLD_VALUES = {"data.synthetic_share": 0.5, "data.oversample": False, "data.stack_policy": "fifo",
              "data.stack_capacity": 1000, "loop.stack_generations": 1}


@pytest.mark.parametrize("old_key", sorted(PREVIOUS_KEYS))
def test_an_old_key_in_a_config_file_is_one_line_naming_its_new_key(tmp_path, old_key):
    config = yaml.safe_load(TINY.read_text())
    section, name = old_key.split(".")
    config[section][name] = OLD_VALUES[old_key]
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = run_cli_here("fit", "--config", str(path), "--check")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {path}: the data regime is one section now, data.regime: "
                               f"{old_key} -> {PREVIOUS_KEYS[old_key]} (e.g. data: {{regime: {{policy: fifo, ")


@pytest.mark.parametrize("old_key", sorted(PREVIOUS_KEYS))
def test_an_old_key_on_the_command_line_is_one_line_naming_its_new_key(old_key):
    proc = run_cli_here("fit", "--config", str(TINY), f"--{old_key}", json.dumps(OLD_VALUES[old_key]), "--check")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"error: the command line: the data regime is one section now, data.regime: {old_key} -> " \
           f"{PREVIOUS_KEYS[old_key]} " in lines[0]


@pytest.mark.parametrize("recorded_as, new_options", [
    ("--config configs/quickstart.yaml --data.stack_policy subsample --data.synthetic_share 0.25 "
     "--loop.stack_generations 2 --data.oversample true",
     ["--data.regime.policy", "subsample", "--data.regime.synthetic_share", "0.25", "--data.regime.window", "2",
      "--data.regime.oversample", "true"]),
    ("--config configs/quickstart.yaml --data.stack_policy replace --data.stack_capacity 5000",
     ["--data.regime.policy", "replace", "--data.regime.capacity", "5000"]),
])
def test_the_same_experiment_given_with_the_new_keys_resumes_a_previous_run(tmp_path, recorded_as, new_options):
    """A run directory holding what the previous release recorded for an experiment (its config.yaml and
    fingerprint) is the same run for that experiment given with the new keys."""
    recorded = PREVIOUS_RELEASE[recorded_as]
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(recorded["text"])
    (run / "state.json").write_text(json.dumps({"version": 2, "config_fingerprint": recorded["fingerprint"],
                                                "completed": [], "results": []}))
    proc = run_cli_here("fit", "--config", str(ROOT / "configs" / "quickstart.yaml"), *new_options,
                        "--loop.run_dir", str(run), "--check")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"run directory: {run} (resumes: 0 of " in proc.stdout
    other = run_cli_here("fit", "--config", str(ROOT / "configs" / "quickstart.yaml"), "--loop.run_dir", str(run),
                         "--check")  # and another experiment is still refused
    assert other.returncode == 2 and "holds a run with a different config" in other.stderr


def previous_release_run(reference, target: Path) -> Path:
    """The reference tiny run as the previous release wrote it (old config layout and fingerprint, old row field),
    its last stage not yet done."""
    run = reference.copy_to(target)
    recorded = PREVIOUS_RELEASE["--config tests/configs/tiny_mnist.yaml"]
    assert identity_text((run / "config.yaml").read_text()) == recorded["text"]  # the same experiment
    (run / "config.yaml").write_text(recorded["text"])
    state = json.loads((run / "state.json").read_text())
    last = state["completed"].pop()
    assert last == "g2/evaluate/tiny_cnn"
    state["results"].pop()
    state["results"] = [{("synthetic_share" if k == "realised_synthetic_share" else k): v for k, v in row.items()}
                        for row in state["results"]]
    state["config_fingerprint"] = recorded["fingerprint"]
    (run / "state.json").write_text(json.dumps(state))
    (run / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in state["results"]))
    return run


def test_a_run_of_the_previous_release_resumes_from_its_saved_config(tiny_reference_run, tmp_path):
    run = previous_release_run(tiny_reference_run, tmp_path / "old_run")
    check = run_cli_here("fit", "--config", str(run / "config.yaml"), "--check")
    assert check.returncode == 0, check.stderr[-3000:]
    assert f"run directory: {run} (resumes: 11 of 12 stages done)" in check.stdout

    proc = run_cli_here("fit", "--config", str(run / "config.yaml"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "resuming" in proc.stdout + proc.stderr
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    reference = [json.loads(line) for line in (tiny_reference_run.run_dir / "results.jsonl").read_text().splitlines()]
    assert all("realised_synthetic_share" in row and "synthetic_share" not in row for row in rows)  # one kind of row
    compared = ("generation", "acc", "meo", "realised_synthetic_share", "n_synthetic", "stack_generations")
    assert [{k: r[k] for k in compared} for r in rows] == [{k: r[k] for k in compared} for r in reference]
    assert (run / "config.yaml").read_text() == PREVIOUS_RELEASE["--config tests/configs/tiny_mnist.yaml"]["text"]
    state = json.loads((run / "state.json").read_text())
    assert state["config_fingerprint"] == PREVIOUS_RELEASE["--config tests/configs/tiny_mnist.yaml"]["fingerprint"]
