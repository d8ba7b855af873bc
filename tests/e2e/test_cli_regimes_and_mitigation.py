"""Through the CLI: a data regime other than the paper's FIFO, and the in-loop subgroup-balance mitigation."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from datamodules.colored_mnist import color_oracle
from datamodules.stack import SyntheticStack
from filters.base import select_keep
from filters.subgroup_balance import balanced_counts
from metrics.block_statistics import subgroup_counts

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "configs" / "tiny_mnist.yaml")
BALANCED = json.dumps([{"class_path": "filters.UncertaintyFilter", "init_args": {"ratio": 0.1, "mc_passes": 3}},
                       {"class_path": "filters.SubgroupBalanceFilter", "init_args": {"target": "uniform"}}])


def fit(run_dir: Path, *extra: str) -> list[dict]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "fit", "--config", TINY, "--loop.run_dir",
                           str(run_dir), *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def test_the_accumulate_regime_keeps_every_generation_and_uses_all_of_it(tmp_path):
    rows = fit(tmp_path / "run", "--data.stack_policy", "accumulate")  # tiny_mnist keeps 1 generation under fifo
    assert [r["stack_generations"] for r in rows] == [[], [1], [1, 2]]
    assert [r["n_synthetic"] for r in rows] == [0, 90, 180] and rows[2]["synthetic_reuse"] == 1.0


def test_the_subgroup_balance_filter_pushes_exactly_the_balanced_subset(tmp_path):
    """Whatever the tiny generator produced, the stack holds, per digit, the uniform-target subset of the colours the
    uncertainty filter left (read back from the stacked pixels)."""
    run_dir = tmp_path / "run"
    rows = fit(run_dir, "--filters", BALANCED, "--loop.generations", "1")
    saved = load_file(str(run_dir / "gen_01" / "block_scores.safetensors"))
    survivors = select_keep(saved["score/uncertainty"], saved["label"], ratio=0.1)
    available = subgroup_counts(saved["label"][survivors], saved["group"][survivors], 10, 3)
    expected = torch.stack([balanced_counts(available[c], torch.ones(3)) for c in range(10)])
    stack = SyntheticStack(run_dir / "stack", max_generations=1, verify=True)
    images, labels = stack.get_batch(torch.arange(len(stack)))
    assert torch.equal(subgroup_counts(labels, color_oracle(images), 10, 3), expected)
    assert rows[1]["filter_kept"] == int(expected.sum())
