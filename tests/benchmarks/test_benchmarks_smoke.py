"""Smoke test of the benchmark scripts: each runs at --quick size, prints its RATIO lines and writes its JSON line.

No timing is asserted (the numbers of a --quick run mean nothing); the parsers of the loop's progress lines are
checked on hand-written lines.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

EXPECTED_RATIOS = {
    "classifier": {"lenet_fit", "lenet_epoch", "tiny_cnn_fit", "tiny_cnn_epoch"},
    "loader": {"loader_ratio", "data_wait_share"},
    "generation": {"predict_ratio"},
    "evaluation": {"fairness_eval_ratio"},
    "stack": {"reader_peak_rss_gib"},
    "quickstart": {"generation_time_max_over_min"},
    "concurrency": {"divided_over_default_makespan"},
}


@pytest.mark.parametrize("name", list(EXPECTED_RATIOS))
def test_benchmark_quick_run_prints_ratios_and_writes_json(name, tmp_path, capsys):
    module = importlib.import_module(f"bench_{name}")
    json_path = tmp_path / "out.jsonl"
    threads = [] if name == "stack" else ["--threads", "1"]  # steadier and faster on a shared CPU
    module.main(["--quick", *threads, "--json", str(json_path)])
    printed = capsys.readouterr().out
    ratio_lines = [line for line in printed.splitlines() if line.startswith(f"RATIO {name}/")]
    assert {line.split()[1].split("/")[1] for line in ratio_lines} == EXPECTED_RATIOS[name]
    rows = [json.loads(line) for line in json_path.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["benchmark"] == name and rows[0]["quick"] is True
    assert {r["name"] for r in rows[0]["ratios"]} == EXPECTED_RATIOS[name]
    for ratio in rows[0]["ratios"]:
        assert ratio["value"] > 0 and isinstance(ratio["met"], bool)


def test_generation_times_splits_progress_lines_by_generation():
    from harness import generation_times, ratio_entry

    lines = [(1.0, "[genbias] generation 0/2 - training lenet"), (3.0, "noise"),
             (4.0, "[genbias] generation 1/2 - training generator"), (6.0, "[genbias] generation 1/2 - generating"),
             (9.0, "[genbias] generation 2/2 - training generator")]
    assert generation_times(lines, end_time=15.0) == {0: 3.0, 1: 5.0, 2: 6.0}
    assert ratio_entry("share", 0.04, "< 5%")["met"] is True
    assert ratio_entry("share", 0.06, "< 5%")["met"] is False
    assert ratio_entry("r", 1.2, "<= 1.10")["met"] is False


def test_gpu_check_stage_report_and_projection():
    from gpu_check import stage_report

    lines = [
        (0.0, "[genbias] generation 0/1 - training lenet on 100 real + 0 synthetic samples/epoch (stack: [])"),
        (2.0, "[genbias] generation 0/1 - evaluating lenet on the real test set"),
        (3.0, "[genbias] generation 0 lenet: acc=0.5 meo=0.9 di=0.9 md=0.1"),
        (3.0, "[genbias] generation 1/1 - training generator ConditionalDCGAN on 100 real + 0 synthetic samples/epoch"),
        (7.0, "[genbias] generation 1/1 - generating 50 samples"),
        (8.0, "[genbias] generation 1/1 - stack holds generations [1] (50 samples)"),
        (9.0, "[genbias] generation 1/1 - training lenet on 100 real + 100 synthetic samples/epoch (stack: [1])"),
        (13.0, "[genbias] generation 1/1 - evaluating lenet on the real test set"),
    ]
    rows = [{"generation": 0, "classifier": "lenet", "epochs": 2},
            {"generation": 1, "classifier": "lenet", "epochs": 4}]
    result = stage_report(lines, 14.0, {"loop": {"generator_epochs": 2}}, rows)
    stages = {(s["generation"], s["stage"]): s for s in result["stages"]}
    assert stages[(0, "train/lenet")]["images_per_s"] == pytest.approx(100 * 2 / 2.0)
    assert stages[(1, "generator_train")]["images_per_s"] == pytest.approx(100 * 2 / 4.0)
    assert stages[(1, "generate")]["seconds"] == pytest.approx(2.0)  # generating + merge/push
    assert stages[(1, "train/lenet")]["images_per_s"] == pytest.approx(200 * 4 / 4.0)
    # 3 seeds x (gen-0 classifiers 3 s x 5 + 10 x (generator 6 s + classifiers 5 s x 5))
    assert result["projection_s"] == pytest.approx(3 * (3 * 5 + 10 * (6 + 5 * 5)))


def test_gpu_check_skips_without_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: gpu_check.sh would run the real check")
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    done = subprocess.run([bash, str(BENCH_DIR / "gpu_check.sh")], capture_output=True, text=True, timeout=60,
                          env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "no CUDA GPU on this machine: skipped" in done.stdout
