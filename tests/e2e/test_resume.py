"""Kill the loop with SIGKILL at four different points, resume it, and get exactly the uninterrupted results.

The killed launches are subprocesses (``cli.py``, as a user runs it); the uninterrupted reference and the final
resume run the same command in this process (tests/in_process.py), at the same thread count."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.in_process import run_cli_here

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "configs" / "tiny_mnist.yaml")
COMPARED = ("acc", "meo", "di", "md", "meo_class", "di_class", "md_class", "acc_rank", "n_real", "n_synthetic",
            "stack_size", "stack_generations", "fid", "filter_kept", "filter_dropped", "quality_q", "imbalance_u",
            "quality_q_kept", "imbalance_u_kept", "majority_gain", "majority_gain_kept", "realised_synthetic_share",
            "synthetic_reuse")
# a stage in flight (generation), the end of generation before it was recorded (the gates have scored the block),
# the push stage after the stack was written but before it was recorded, and the moment after a classifier was
# evaluated but before its stage was recorded
KILL_AT = ["generation 1/2 - generating", "FID generation 1:", "filters kept 90/100 samples of generation 1",
           "generation 2 tiny_cnn: acc="]


def arguments(run_dir: Path) -> list[str]:
    return ["fit", "--config", TINY, "--loop.run_dir", str(run_dir), "--trainer.deterministic", "true"]


def command(run_dir: Path) -> list[str]:
    return [sys.executable, str(ROOT / "cli.py"), *arguments(run_dir)]


def env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1"}


def run_and_kill_at(run_dir: Path, marker: str) -> str:
    proc = subprocess.Popen(command(run_dir), cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, f"never reached {marker!r}:\n" + "".join(seen[-40:])
    return "".join(seen)


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def assert_rows_equal(actual: list[dict], expected: list[dict]) -> None:
    """Exact by design, not a tolerance for another kernel: both runs execute on this machine with the same torch
    thread count (this process's, inherited by its subprocesses), so every stage runs the same kernels on the same
    batches; abs=1e-6 is far below any metric's resolution (1 / test-set size)."""
    def keys(rows):
        return [(r["generation"], r["classifier"]) for r in rows]

    assert keys(actual) == keys(expected)
    for a, e in zip(actual, expected):
        for key in COMPARED:
            if isinstance(e[key], float):
                assert a[key] == pytest.approx(e[key], abs=1e-6), (a["generation"], key)
            elif isinstance(e[key], list) and e[key] and isinstance(e[key][0], float):
                assert a[key] == pytest.approx(e[key], abs=1e-6), (a["generation"], key)
            else:
                assert a[key] == e[key], (a["generation"], key)


def fit_here(run_dir: Path) -> str:
    proc = run_cli_here(*arguments(run_dir))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def test_sigkill_at_four_points_then_resume_equals_an_uninterrupted_run(tmp_path):
    reference = tmp_path / "reference"
    fit_here(reference)

    interrupted = tmp_path / "interrupted"
    for marker in KILL_AT:
        run_and_kill_at(interrupted, marker)
    assert "resuming" in fit_here(interrupted)

    assert_rows_equal(rows(interrupted), rows(reference))
    state = json.loads((interrupted / "state.json").read_text())
    assert len(state["completed"]) == len(set(state["completed"])) == 12
    stack = json.loads((interrupted / "stack" / "manifest.json").read_text())
    assert stack == json.loads((reference / "stack" / "manifest.json").read_text())  # same blocks, same checksums

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary = EventAccumulator(str(interrupted / "tensorboard" / "summary"))
    summary.Reload()
    assert [e.step for e in summary.Scalars("tiny_cnn/acc")] == [0, 1, 2]  # nothing duplicated or lost
