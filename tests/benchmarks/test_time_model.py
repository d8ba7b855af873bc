"""The time model's counts and arithmetic, on the shipped Hard ImageNet and Living-17 configs (known answers)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import time_model  # noqa: E402

ROOT = BENCH_DIR.parent


@pytest.fixture(scope="module")
def hard_imagenet():
    return time_model.Protocol.from_config(ROOT / "configs" / "hardimagenet.yaml")


def test_the_protocol_counts_follow_the_fifo_mix(hard_imagenet):
    p = hard_imagenet
    assert (p.generations, p.block, p.window, p.generator_epochs, len(p.classifiers)) == (5, 14_500, 3, 5, 5)
    assert p.kept() == 5_800  # the CLIP filter drops 60%
    # D_0 real only; one kept block; two; three kept blocks (17,400) exceed p / (1 - p) N = 17,200: capped
    assert [p.training_set(g) for g in range(5)] == [17_200, 23_000, 28_800, 34_400, 34_400]


def test_rates_from_flops(monkeypatch):
    assert time_model.lora_img_s(cached=True) == pytest.approx(989 * 0.35 / (0.803 * 2))
    assert time_model.lora_img_s(cached=False) == pytest.approx(989 * 0.35 / (0.803 * 2 + 1.117))
    assert time_model.sampling_img_s(30) == pytest.approx(989 * 0.35 / (30 * 2 * 0.803 + 2.515))


def test_work_counts_fall_from_every_epoch_to_once_per_run(hard_imagenet):
    counts = time_model.work_counts(hard_imagenet, epochs=15)
    assert counts["jpeg_decodes"] == {"before": 5 * 15 * 17_200 * 6, "after": 17_200}
    assert counts["real_vae_encodes"] == {"before": 5 * 17_200 * 5, "after": 17_200}
    lora_images = 5 * (17_200 + 23_000 + 28_800 + 34_400 + 34_400)
    assert counts["vae_encodes"] == {"before": lora_images, "after": 17_200 + 4 * 5_800}  # block 5 trains nothing


def test_side_by_side_takes_the_slowest_classifier_not_the_sum(hard_imagenet):
    side = time_model.generation_hours(hard_imagenet, 3, 8, "caches + side by side", epochs=15)["classifiers"]
    each = [time_model.classifier_seconds(hard_imagenet, arch, 34_400, 15, 1, "caches") / 3600
            for arch in hard_imagenet.classifiers]
    assert side == pytest.approx(max(each))
    assert time_model.generation_hours(hard_imagenet, 3, 1, "caches", epochs=15)["classifiers"] == pytest.approx(
        sum(each))
    assert time_model.generation_hours(hard_imagenet, 0, 8, "before", epochs=15)["lora"] == 0.0  # generation 0


def test_the_script_prints_the_table_and_the_protocol_line(capsys):
    text = time_model.main(["--seeds", "3"])
    assert "| breeds_living17 | 8 | caches + side by side |" in text
    assert "paper protocol (both datasets) on one 8-GPU node: before" in text
    assert "estimated rates (11 of 14; the rest counted or measured)" in text


def test_measured_rates_replace_the_estimates_they_name_and_only_those(capsys):
    import time_model

    estimated_cached, estimated_sampling = time_model.lora_img_s(True), time_model.sampling_img_s()
    try:
        text = time_model.main(["--measured", "lora_cached_img_s=400"])
        assert time_model.lora_img_s(True) == 400
        assert time_model.sampling_img_s() == estimated_sampling  # not named: still the estimate
        assert "measured on a GPU (replacing their estimates): lora_cached_img_s 400" in text
        assert "LoRA 127 -> 400 img/s per GPU" in text
        with pytest.raises(SystemExit):
            time_model.main(["--measured", "classifier_img_s=5"])
        assert "expected NAME=IMG_S" in capsys.readouterr().err
    finally:
        time_model.MEASURED.clear()
    assert time_model.lora_img_s(True) == estimated_cached
