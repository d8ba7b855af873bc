"""common/allocation.py: DataLoader workers follow SLURM's --cpus-per-task unless the config pins them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.allocation import pinned_workers, workers_for_allocation

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def configs(tmp_path) -> tuple[Path, Path]:
    free = tmp_path / "free.yaml"
    free.write_text("data:\n  batch_size: 32\n")
    pinned = tmp_path / "pinned.yaml"
    pinned.write_text("data:\n  num_workers: 8\n")
    return free, pinned


def test_outside_an_allocation_nothing_is_added(configs):
    free, _ = configs
    assert workers_for_allocation(free, [], {}) == ([], None)
    assert workers_for_allocation(free, [], {"SLURM_CPUS_PER_TASK": ""}) == ([], None)


@pytest.mark.parametrize(("cpus", "workers"), [("1", "0"), ("4", "3"), ("16", "15")])
def test_a_config_that_does_not_pin_them_gets_one_worker_per_cpu_but_one(configs, cpus, workers):
    free, _ = configs
    assert workers_for_allocation(free, [], {"SLURM_CPUS_PER_TASK": cpus}) == (["--data.num_workers", workers], None)


def test_a_pinned_value_is_kept_and_warned_about_only_when_it_exceeds_the_cpus(configs):
    _, pinned = configs
    assert workers_for_allocation(pinned, [], {"SLURM_CPUS_PER_TASK": "8"}) == ([], None)
    extra, warning = workers_for_allocation(pinned, [], {"SLURM_CPUS_PER_TASK": "4"})
    assert extra == []
    assert "data.num_workers=8" in warning and "4 CPU(s) per task" in warning
    assert "--cpus-per-task=9" in warning and "--data.num_workers 3" in warning


def test_overrides_and_later_config_files_pin_as_the_command_line_does(configs, tmp_path):
    free, pinned = configs
    assert pinned_workers(free, []) is None
    assert pinned_workers(pinned, []) == 8
    assert pinned_workers(free, ["--data.num_workers", "2"]) == 2
    assert pinned_workers(pinned, ["--data.num_workers=0"]) == 0
    assert pinned_workers(free, ["--config", str(pinned)]) == 8
    assert pinned_workers(pinned, ["--config", str(free)]) == 8  # a later file that does not set it keeps it
    assert pinned_workers(pinned, ["--config", str(pinned), "--data.num_workers", "1"]) == 1
    assert pinned_workers(tmp_path / "missing.yaml", []) is None  # cli.py reports the missing file itself
    assert workers_for_allocation(free, ["--data.num_workers", "32"], {"SLURM_CPUS_PER_TASK": "2"})[1]


def test_the_module_prints_the_overrides_for_the_sbatch_template(configs):
    free, pinned = configs
    env = {**os.environ, "SLURM_CPUS_PER_TASK": "6"}
    done = subprocess.run([sys.executable, "-m", "common.allocation", str(free)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.splitlines() == ["--data.num_workers", "5"] and not done.stderr
    done = subprocess.run([sys.executable, "-m", "common.allocation", str(pinned)], cwd=ROOT,
                          env={**env, "SLURM_CPUS_PER_TASK": "2"}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "" and done.stderr.startswith("warning: ")
    assert len(done.stderr.strip().splitlines()) == 1
