"""SIGTERM (how SLURM stops a requeued or preempted job) stops `cli.py fit` at once with a message and exit code 143,
and the same command then resumes. (Under SLURM, Lightning alone notes and "bypasses" a SIGTERM that lands inside a
Trainer, so the run carried on until SIGKILL; tests/slurm checks that case on a real cluster.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "configs" / "tiny_mnist.yaml")


def test_sigterm_while_generating_stops_the_run_and_the_same_command_resumes(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, str(ROOT / "cli.py"), "fit", "--config", TINY, "--loop.run_dir", str(run_dir)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if "generation 1/2 - generating" in line:
            process.send_signal(signal.SIGTERM)
            break
    rest, _ = process.communicate(timeout=120)
    output = "".join(lines) + rest
    assert process.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert "[genbias] SIGTERM: stopping now" in output and "[genbias] done" not in output
    state = json.loads((run_dir / "state.json").read_text())
    assert "g2/generator" not in state["completed"]  # it stopped in generation 1

    resumed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "[genbias] resuming" in resumed.stdout
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in rows] == [0, 1, 2]
