"""CIFAR-20/100 through the CLI on a fake CIFAR-100 tree in the original pickle format."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fakes.cifar100 import write_fake_cifar100

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_biased_cifar_loop_runs_two_generations_with_five_subgroups(tmp_path):
    write_fake_cifar100(tmp_path / "data", n_train_per_fine=12, n_test_per_fine=4)
    run_dir = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "fit", "--config", str(ROOT / "tests" / "configs" / "tiny_cifar.yaml"),
         "--loop.run_dir", str(run_dir), "--data.source.init_args.root", str(tmp_path / "data")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in rows] == [0, 1, 2]
    for row in rows:
        assert row["dataset"] == "cifar20"
        assert len(row["acc_rank"]) == 5 and len(row["group_acc"]) == 20 and len(row["group_acc"][0]) == 5
        assert row["meo_class"] is not None and 0 <= row["meo_class"] <= 1
    # biased: 40 bottom fine classes keep 25% of their training images (of 12 - the validation share)
    assert rows[0]["n_real"] < 100 * 12
    assert [(r["filter_kept"], r["stack_generations"]) for r in rows[1:]] == [(140, [1]), (140, [1, 2])]
    # u_t from the learned fine-class oracle (trained once, kept in the run directory)
    assert all(0 <= r["imbalance_u"] <= 1 for r in rows[1:])
    assert (run_dir / "oracle" / "checkpoints" / "best.ckpt").exists()
    assert proc.stdout.count("training the subgroup oracle") == 1
