"""A sampling stage killed mid-way resumes after its last complete chunk, to the block an uninterrupted run makes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.in_process import run_cli_here

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "configs" / "tiny_mnist.yaml")
#: one generation of 3,000 samples in chunks of 20: 150 chunks, so a kill lands mid-way
OPTIONS = ["--loop.generations", "1", "--loop.samples_per_generation", "3000", "--data.eval_batch_size", "20",
           "--data.regime.window", "1"]
CHUNKS = 150


def arguments(run_dir: Path) -> list[str]:
    return ["fit", "--config", TINY, "--loop.run_dir", str(run_dir), *OPTIONS]


def command(run_dir: Path) -> list[str]:
    return [sys.executable, str(ROOT / "cli.py"), *arguments(run_dir)]


def env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1"}


def chunks(run_dir: Path) -> dict[str, int]:
    """Each complete chunk file's name and inode (an atomic rewrite would give it a new inode)."""
    folder = run_dir / "gen_01" / "shards"
    return {p.name: p.stat().st_ino for p in folder.glob("chunk_*.safetensors")} if folder.exists() else {}


def block_files(run_dir: Path) -> dict[str, bytes]:
    generation = run_dir / "gen_01"
    files = [*sorted((generation / "shards").iterdir()), generation / "block_scores.safetensors",
             *sorted((run_dir / "stack").glob("gen_*.npy")), *sorted((generation / "contact_sheets").iterdir())]
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in files}


def block_report(run_dir: Path) -> dict:
    return json.loads((run_dir / "state.json").read_text())["blocks"]


def test_a_sampling_stage_killed_mid_way_resumes_to_the_same_block_without_redoing_finished_chunks(tmp_path):
    reference = tmp_path / "reference"  # uninterrupted, and the resume below: in this process (tests/in_process.py)
    done = run_cli_here(*arguments(reference))
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(chunks(reference)) == CHUNKS

    run_dir = tmp_path / "run"
    proc = subprocess.Popen(command(run_dir), cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    for line in proc.stdout:
        if "generating 3000 samples" in line:
            break
    while len(chunks(run_dir)) < 10 and proc.poll() is None:
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    finished = chunks(run_dir)
    assert 10 <= len(finished) < CHUNKS, len(finished)  # killed mid-way
    assert not (run_dir / "gen_01" / "block_scores.safetensors").exists()

    resumed = run_cli_here(*arguments(run_dir))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    output = resumed.stdout + resumed.stderr
    assert f"resuming generation: {len(finished)} of {CHUNKS} chunks" in output
    after = chunks(run_dir)
    assert {name: after[name] for name in finished} == finished  # the finished chunks were not written again
    assert len([name for name in after if name not in finished]) == CHUNKS - len(finished)
    # byte for byte by design: same machine, same thread count, same batches (chunks) and per-chunk seeds
    assert block_files(run_dir) == block_files(reference)  # chunks, scores, stack block and sheets, byte for byte
    assert block_report(run_dir) == block_report(reference)  # FID, q_t, u_t, filter counts
