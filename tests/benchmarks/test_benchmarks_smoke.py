"""Smoke test of the benchmark scripts: each runs at --quick size, prints its RATIO lines and writes its JSON line.

No timing is asserted (the numbers of a --quick run mean nothing); the parsers of the loop's progress lines are
checked on hand-written lines.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

EXPECTED_RATIOS = {
    "classifier": {"lenet_bs64_epoch", "tiny_cnn_bs64_epoch"},
    "dcgan": {"dcgan_bs64_epoch"},
    "loader": {"loader_ratio", "data_wait_share", "device_resident_ratio"},
    "generation": {"predict_ratio"},
    "evaluation": {"fairness_eval_ratio"},
    "stack": {"reader_peak_rss_gib"},
    "quickstart": {"generation_time_max_over_min"},
    "classifier_options": {"tiny_cnn_32-true_channels_last_speedup"},
    "concurrency": {"divided_over_default_makespan"},
    "startup": {"cli_help_over_import_torch", "report_help_over_import_torch", "fit_help_over_import_lightning"},
    "latent_cache": {"latent_cache_epoch"},
    "view_store": {"view_store_epoch"},
    "classifier_parallel": {"classifier_stage_makespan"},
    "scale": {f"{stage}_{what}_large_over_small" for stage in ("generate", "push", "sheets")
              for what in ("peak_rss", "time_per_sample")},
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

    lines = [(1.0, "10:00:01 [genbias] generation 0/2 - training lenet"), (3.0, "noise"),
             (4.0, "10:00:04 [genbias] generation 1/2 - training generator"),
             (6.0, "10:00:06 [genbias] generation 1/2 - generating"),
             (9.0, "10:00:09 [genbias] generation 2/2 - training generator")]
    assert generation_times(lines, end_time=15.0) == {0: 3.0, 1: 5.0, 2: 6.0}
    assert ratio_entry("share", 0.04, "< 5%")["met"] is True
    assert ratio_entry("share", 0.06, "< 5%")["met"] is False
    assert ratio_entry("r", 1.2, "<= 1.10")["met"] is False


GPU_CHECK_LINES = [
    (0.0, "09:00:00 [genbias] generation 0/1 - training lenet on 100 real + 0 synthetic samples/epoch (share 0.00)"),
    (2.0, "09:00:02 [genbias] generation 0/1 - stage g0/classifier/lenet done in 2.0 s"),
    (3.0, "09:00:03 [genbias] generation 0/1 - stage g0/evaluate/lenet done in 1.0 s"),
    (3.0, "09:00:03 [genbias] generation 1/1 - training generator ConditionalDCGAN on 100 real + 0 synthetic samples"),
    (7.0, "09:00:07 [genbias] generation 1/1 - stage g1/generator done in 4.0 s"),
    (7.0, "09:00:07 [genbias] generation 1/1 - generating 50 samples"),
    (8.0, "09:00:08 [genbias] generation 1/1 - stage g1/generate done in 1.0 s"),
    (9.0, "09:00:09 [genbias] generation 1/1 - stage g1/push done in 1.0 s"),
    (9.0, "09:00:09 [genbias] generation 1/1 - training lenet on 100 real + 40 synthetic samples/epoch (share 0.29)"),
    (16.0, "09:00:16 [genbias] generation 1/1 - stage g1/classifier/lenet done in 7.0 s"),
    (17.0, "09:00:17 [genbias] generation 1/1 - stage g1/evaluate/lenet done in 1.0 s"),
]
GPU_CHECK_ROWS = [{"generation": 0, "classifier": "lenet", "epochs": 2, "n_real": 100, "stack_size": 0},
                  {"generation": 1, "classifier": "lenet", "epochs": 2, "n_real": 100, "stack_size": 40}]


def test_gpu_check_stage_report_reads_stage_spans_sizes_and_step_timing():
    from gpu_check import stage_report

    timing = {"gen_01/lenet": [{"outside_model_fraction": 0.5, "samples_per_s": 10.0},
                               {"outside_model_fraction": 0.2, "samples_per_s": 30.0},
                               {"outside_model_fraction": 0.4, "samples_per_s": 20.0}]}
    stages = {(s["generation"], s["stage"]): s for s in stage_report(GPU_CHECK_LINES, GPU_CHECK_ROWS, timing, 2)}
    assert list(stages) == [(0, "classifier/lenet"), (0, "evaluate/lenet"), (1, "generator"), (1, "generate"),
                            (1, "push"), (1, "classifier/lenet"), (1, "evaluate/lenet")]
    assert stages[(0, "classifier/lenet")]["images_per_s"] == pytest.approx(100 * 2 / 2.0)
    assert stages[(1, "generator")]["images_per_s"] == pytest.approx(100 * 2 / 4.0)
    assert stages[(1, "generate")]["images_per_s"] == pytest.approx(50 / 1.0)
    assert stages[(1, "classifier/lenet")]["images_per_s"] == pytest.approx(140 * 2 / 7.0)
    assert stages[(1, "classifier/lenet")]["step_timing"] == {
        "first_epoch_outside": 0.5, "outside_model_fraction": pytest.approx(0.3), "samples_per_s": 25.0}
    assert stages[(0, "classifier/lenet")]["step_timing"] is None


def test_gpu_check_projection_scales_each_measured_rate_to_the_protocol():
    from gpu_check import project, stage_report

    stages = stage_report(GPU_CHECK_LINES, GPU_CHECK_ROWS, {}, 2)
    config = {"data": {"regime": {"synthetic_share": 0.5, "window": 2}}, "loop": {"generator_epochs": 10},
              "classifiers": [{"arch": "lenet", "max_epochs": 5}]}
    # per sample-epoch: lenet 2.0 / 200 at generation 0, 7.0 / 280 after; the generator 4.0 / 200
    # samples per epoch: 100 real + min(100 target, 40 per block x min(g, 2) blocks): 100, 140, 180, 180
    protocol = project(stages, config, GPU_CHECK_ROWS, generations=3, n_classifiers=1, seeds=1)
    classifiers = 2.0 / 200 * 100 * 5 + 1.0 + sum(7.0 / 280 * n * 5 + 1.0 for n in (140, 180, 180))
    generators = sum(4.0 / 200 * n * 10 + 2.0 for n in (100, 140, 180))  # + generate and push, 1 s each
    assert protocol == pytest.approx(classifiers + generators)
    assert project(stages, config, GPU_CHECK_ROWS, generations=3, n_classifiers=5, seeds=3) == pytest.approx(
        3 * (5 * classifiers + generators))


def test_gpu_check_config_caps_epochs_and_swaps_weights_only_when_asked():
    from gpu_check import check_config

    config = {"loop": {"generations": 10, "generator_epochs": 20},
              "classifiers": [{"arch": "lenet", "max_epochs": 50, "patience": 5}],
              "filters": [{"class_path": "filters.ClipScoreFilter", "init_args": {"ratio": 0.3}}],
              "quality": {"fid": {"extractor": "inception"}}}
    checked = check_config(config, epochs=3, generator_epochs=2, stand_in_weights=True)
    assert checked["loop"] == {"generations": 1, "generator_epochs": 2}
    assert checked["classifiers"] == [{"arch": "lenet", "max_epochs": 3, "patience": 0}]
    assert checked["filters"] == [{"class_path": "filters.UncertaintyFilter",
                                   "init_args": {"ratio": 0.3, "mc_passes": 10}}]
    assert checked["quality"]["fid"]["extractor"] == "classifier"
    assert config["classifiers"][0]["max_epochs"] == 50  # the original is untouched
    kept = check_config(config, epochs=3, generator_epochs=2, stand_in_weights=False)
    assert kept["filters"] == config["filters"] and kept["quality"] == config["quality"]
