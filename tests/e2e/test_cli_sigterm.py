"""SIGTERM (how SLURM stops a requeued or preempted job) stops `cli.py fit` at once with a message, wherever it lands,
and the same command then resumes. (Under SLURM, Lightning alone notes and "bypasses" a SIGTERM that lands inside a
Trainer, so the run carried on until SIGKILL; tests/slurm checks that case on a real cluster.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.in_process import run_cli_here

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "configs" / "tiny_mnist.yaml")

# Lightning composes existing SIGTERM handlers into its own and Python may run a handler inside a __del__, where a
# raised exception is swallowed ("Exception ignored in ..."): what let a signalled run carry on under SLURM.
SIGTERM_IN_DEL = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
import cli

class Collected:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, inside __del__

with cli.stop_on_sigterm():
    Collected()
    print("still running", flush=True)
"""


def test_sigterm_handled_inside_a_destructor_still_ends_the_process():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, "-c", SIGTERM_IN_DEL, str(ROOT)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGTERM, result.stdout + result.stderr[-2000:]
    assert "still running" not in result.stdout and "[genbias] SIGTERM: stopping now" in result.stderr


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
    assert process.returncode == -signal.SIGTERM, output[-3000:]  # ended by the signal
    assert "[genbias] SIGTERM: stopping now" in output and "[genbias] done" not in output
    state = json.loads((run_dir / "state.json").read_text())
    assert "g2/generator" not in state["completed"]  # it stopped in generation 1

    resumed = run_cli_here(*command[2:])  # the same command (tests/in_process.py)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "[genbias] resuming" in resumed.stdout
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in rows] == [0, 1, 2]
