"""A dataset and a generator written outside the package (examples/plugins/, one file each, named by class_path in
one config, found through PYTHONPATH) run the whole loop, and the report names their classes and subgroup noun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cli

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "examples" / "plugins"
CONFIG = str(PLUGINS / "coloured_squares.yaml")
PRODUCT_PACKAGES = ("common", "metrics", "filters", "datamodules", "lightning_modules", "callbacks", "simulation",
                    "reporting", "scripts")


@pytest.fixture(scope="module")
def plugin_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("plugins") / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(PLUGINS), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "fit", "--config", CONFIG, "--loop.run_dir",
                           str(run_dir)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, proc.stderr + proc.stdout


def test_the_loop_runs_two_generations_of_the_plugins(plugin_run):
    run_dir, log = plugin_run
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [(r["generation"], r["dataset"]) for r in rows] == [(g, "coloured_squares") for g in range(3)]
    assert all(r["meo"] is not None for r in rows)  # the card's pixel subgroups reach the fairness metrics
    blocks = json.loads((run_dir / "state.json").read_text())["blocks"]
    assert blocks["1"]["imbalance_u"] is not None  # u_t read from the pixels, as the card says
    assert "training generator ClassMeanGenerator" in log and "mean_loss=" in log  # its declared loss is shown


def test_the_report_names_the_plugins_classes_and_subgroup_noun(plugin_run, tmp_path):
    run_dir, _ = plugin_run
    assert cli.main(["report", str(run_dir), "--out", str(tmp_path / "report")]) == 0
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "## coloured_squares:" in summary
    assert "Classes (2): north, south; subgroup = hue (3: crimson, lime, azure)." in summary


def test_no_product_file_mentions_the_plugins():
    names = ("coloured_squares", "ColouredSquares", "class_mean_generator", "ClassMeanGenerator")
    files = [ROOT / "cli.py", *(p for package in PRODUCT_PACKAGES for p in (ROOT / package).rglob("*.py"))]
    mentions = [f"{path.relative_to(ROOT)}: {name}" for path in files for name in names if name in path.read_text()]
    assert not mentions, mentions


@pytest.mark.parametrize("extra, message", [
    (["--model.init_args.noise_scale", "-1"], "model.init_args.noise_scale must be >= 0, got -1.0"),
    (["--data.source.init_args.train_table", "[[1, 2]]"], "coloured_squares: train_table must be 2 rows of 3"),
], ids=["generator", "dataset"])
def test_a_bad_plugin_argument_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.syspath_prepend(str(PLUGINS))
    run_dir = tmp_path / "run"
    code = cli.main(["fit", "--config", CONFIG, "--loop.run_dir", str(run_dir), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not run_dir.exists()
