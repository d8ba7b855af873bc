"""The generation stage's quality gates under 2-process DDP equal a 1-process run: kept ids, FID, q_t and u_t.

Both runs generate generation 1's block from the same trained generator and generation-0 classifier (the second
run is a copy of the first with generation 1's block undone), so any difference comes from how the block is split
across ranks and how the gates agree.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.in_process import run_cli_here

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "configs" / "tiny_mnist.yaml")
# aligned batches of 25 samples: the same batches in a 1- and a 2-process run
OPTIONS = ["--loop.generations", "1", "--data.eval_batch_size", "25"]


def fit(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    # the ranks run the one-process run's thread count (this process's): the same batches through the same kernels,
    # so scores, features and counts are bit-identical and only the cross-rank sums' order differs (FID at rel 1e-6)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore",
           "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "fit", "--config", TINY, "--loop.run_dir",
                           str(run_dir), *OPTIONS, *extra], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def fit_here(run_dir: Path) -> None:
    """The one-process run, in this process (tests/in_process.py)."""
    proc = run_cli_here("fit", "--config", TINY, "--loop.run_dir", str(run_dir), *OPTIONS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def undo_generation_1_block(run_dir: Path) -> None:
    """Forget everything from generation 1's generation stage on (state, shards, scores, stack)."""
    state = json.loads((run_dir / "state.json").read_text())
    first = state["completed"].index("g1/generate")
    state["completed"] = state["completed"][:first]
    state["results"] = [row for row in state["results"] if row["generation"] == 0]
    state["blocks"] = {}
    state.pop("stack", None)
    (run_dir / "state.json").write_text(json.dumps(state))
    for leftover in ("stack", "gen_01/shards", "gen_01/contact_sheets", "gen_01/classifiers"):
        shutil.rmtree(run_dir / leftover)
    (run_dir / "gen_01" / "block_scores.safetensors").unlink()
    (run_dir / "gen_01" / "fid_real_statistics.safetensors").unlink()


def test_two_processes_keep_the_same_samples_and_measure_the_same_block(tmp_path):
    one = tmp_path / "one_process"
    fit_here(one)
    two = tmp_path / "two_processes"
    shutil.copytree(one, two)
    undo_generation_1_block(two)
    fit(two, "--trainer.devices", "2", "--trainer.strategy", "ddp")

    blocks = [json.loads((run / "state.json").read_text())["blocks"]["1"] for run in (one, two)]
    for key in ("fid", "fid_kept", "quality_q", "imbalance_u", "majority_gain", "quality_q_kept",
                "imbalance_u_kept"):
        assert blocks[1][key] == pytest.approx(blocks[0][key], rel=1e-6, abs=1e-9), key
    assert blocks[1]["filters"] == blocks[0]["filters"]  # same kept/dropped counts per class, same score histogram
    manifests = [json.loads((run / "stack" / "manifest.json").read_text()) for run in (one, two)]
    assert manifests[1]["blocks"] == manifests[0]["blocks"]  # the same kept samples, byte for byte
    assert blocks[0]["filter_kept"] == 90 and blocks[0]["fid"] > 0
