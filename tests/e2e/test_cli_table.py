"""A table-driven dataset through the CLI: 2 generations on a tiny generated table, then `cli.py report`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cli
from tests.fakes.tables import make_table

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_table_loop_runs_two_generations_and_reports(tmp_path, capsys):
    table = make_table(tmp_path / "data", per_cell=12, split=False)
    run_dir = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "fit", "--config", str(ROOT / "tests" / "configs" / "tiny_table.yaml"),
         "--loop.run_dir", str(run_dir), "--data.source.init_args.table", str(table),
         "--data.source.init_args.image_root", str(tmp_path / "data")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in rows] == [0, 1, 2]
    for row in rows:
        assert row["dataset"] == "tiny_table"
        assert len(row["acc_rank"]) == 2 and len(row["group_acc"]) == 2 and 0 <= row["meo"] <= 1
        assert row["meo_class"] is not None
    # a seeded stratified split of the 12 images of every cell: 20% test, 10% val, the rest train
    assert rows[0]["n_real"] == 4 * (12 - round(0.2 * 12) - round(0.1 / 0.8 * (12 - round(0.2 * 12))))
    assert [(r["filter_kept"], r["stack_generations"]) for r in rows[1:]] == [(30, [1]), (30, [1, 2])]
    assert all(0 <= r["imbalance_u"] <= 1 for r in rows[1:])  # u_t from the learned oracle
    assert (run_dir / "oracle" / "checkpoints" / "best.ckpt").exists()
    assert proc.stdout.count("training the subgroup oracle") == 1

    report = tmp_path / "report"
    assert cli.main(["report", str(run_dir), "--out", str(report)]) == 0
    summary = (report / "summary.md").read_text()
    assert "tiny_table" in summary and (report / "figures" / "tiny_table__overview.png").is_file()
