"""scripts/sweep.py --submit on a real (local, one-node) SLURM cluster: arrays that run every task of a sweep, and a
hand-made array that does not match the sweep stopped at once with one line. About a minute on 2 cores."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.slurm.test_slurm import _UNAVAILABLE, FINISHED_STATES

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "tests/configs/tiny_mnist.yaml"
SWEEP_SCRIPT = "scripts/sweep.py"
TIMEOUT_S = 300

pytestmark = [pytest.mark.slurm, pytest.mark.skipif(_UNAVAILABLE is not None, reason=_UNAVAILABLE or "")]


def _env() -> dict[str, str]:
    """The submitter's environment (sbatch exports it to the job), with this interpreter first on PATH."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"}


def _tiny_sweep(tmp_path: Path, seeds: list[int]) -> Path:
    """A sweep of the tiny config at generation 0 only, CPU-only resources (the CI cluster has no GPU)."""
    path = tmp_path / "sweep.yaml"
    path.write_text(json.dumps({
        "configs": [{"path": CONFIG, "resources": {"gpus_per_node": 0, "cpus_per_task": 1, "time": "00:10:00"}}],
        "seeds": seeds, "out": str(tmp_path / "out"),
        "overrides": [{"trainer.accelerator": "cpu", "loop.generations": 0}]}))
    return path


def _array_states(job_id: str) -> dict[str, str]:
    """JobState of every task of an array job, by array task id (once each has its own record)."""
    shown = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=20)
    states = {}
    for line in shown.stdout.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        states[fields.get("ArrayTaskId", "?")] = fields.get("JobState", "?")
    return states


def _wait_until_finished(job_id: str, count: int) -> dict[str, str]:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        states = _array_states(job_id)
        if len(states) == count and all(s in FINISHED_STATES for s in states.values()):
            return states
        time.sleep(1)
    subprocess.run(["scancel", job_id], capture_output=True, timeout=20)
    raise AssertionError(f"array job {job_id} did not finish in {TIMEOUT_S} s: {_array_states(job_id)}")


def test_dry_run_covers_all_18_tasks_of_the_paper_sweep():
    done = subprocess.run([sys.executable, SWEEP_SCRIPT, "configs/sweeps/paper_seeds.yaml", "--submit", "--dry-run"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=_env())
    assert done.returncode == 0, done.stderr
    arrays = re.findall(r"--array=(\S+)", done.stdout)
    indices = [i for spec in arrays for part in spec.split(",") for i in
               range(int(part.split("-")[0]), int(part.split("-")[-1]) + 1)]
    assert sorted(indices) == list(range(18)) and arrays == ["0-11", "12-17"]


def test_a_submitted_three_task_sweep_runs_all_three(tmp_path):
    sweep_file = _tiny_sweep(tmp_path, seeds=[0, 1, 2])
    done = subprocess.run([sys.executable, SWEEP_SCRIPT, str(sweep_file), "--submit", "--",
                           f"--output={tmp_path}/task_%a.log"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, env=_env())
    assert done.returncode == 0, done.stderr
    (job_id,) = re.findall(r"Submitted batch job (\d+)", done.stdout)
    states = _wait_until_finished(job_id, 3)
    logs = {i: (tmp_path / f"task_{i}.log").read_text(errors="replace") for i in range(3)}
    assert states == {"0": "COMPLETED", "1": "COMPLETED", "2": "COMPLETED"}, logs
    for seed in range(3):
        run_dir = tmp_path / "out" / "tiny_mnist__accelerator-cpu_generations-0" / f"seed_{seed}"
        rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
        assert [(r["generation"], r["classifier"]) for r in rows] == [(0, "tiny_cnn")]
    # submitting again: every run is finished, nothing is submitted
    again = subprocess.run([sys.executable, SWEEP_SCRIPT, str(sweep_file), "--submit"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60, env=_env())
    assert again.returncode == 0 and "all 3 tasks are finished: nothing to submit" in again.stdout
    assert "sbatch " not in again.stdout


def test_a_wrong_manual_array_fails_at_once_with_one_line(tmp_path):
    sweep_file = _tiny_sweep(tmp_path, seeds=[0, 1, 2])
    done = subprocess.run(["sbatch", "--parsable", "--wait", "--array=0-1", "--gres=none", "--cpus-per-task=1",
                           f"--output={tmp_path}/task_%a.log", "scripts/slurm/sweep.sbatch", str(sweep_file)],
                          cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S, env=_env())
    assert done.returncode != 0
    expected = (f"sweep.sbatch: error: the array (0-1, 2 tasks) does not match {sweep_file} (3 tasks expected): "
                f"submit with --array=0-2, or use python scripts/sweep.py {sweep_file} --submit")
    for task in range(2):
        text = (tmp_path / f"task_{task}.log").read_text(errors="replace")
        assert [line for line in text.splitlines() if "error" in line] == [expected], text
    assert not (tmp_path / "out").exists()  # nothing ran
