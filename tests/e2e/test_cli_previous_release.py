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


def test_the_previous_layout_of_a_new_experiment_keeps_its_recorded_identity():
    """The same experiment given with the new keys resumes a run the previous release recorded (its fingerprint)."""
    recorded = PREVIOUS_RELEASE["--config configs/quickstart.yaml --data.stack_policy subsample --data.synthetic_share "
                                "0.25 --loop.stack_generations 2 --data.oversample true"]
    from simulation.run_directory import config_fingerprint

    assert config_fingerprint(recorded["text"]) == recorded["fingerprint"]  # a text without data.regime: as it was


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
