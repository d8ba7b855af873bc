"""The disk estimate per generation (known answers from S, the image shape and parameter counts) and the refusal
when the filesystem cannot hold the next generation (free space faked: no disk is filled)."""

from __future__ import annotations

from collections import namedtuple

import pytest

import simulation.disk_plan as disk_plan
from common.errors import ConfigError
from simulation.config import ClassifierConfig
from simulation.disk_plan import GIB, check_disk, classifier_parameters, estimate_generation_disk, run_total

Usage = namedtuple("Usage", "total used free")


def test_the_estimate_counts_shards_block_and_checkpoints():
    disk = estimate_generation_disk(100, (3, 28, 28), 1000, [10, 20])
    assert disk.raw_shards == 100 * (2352 + 16)  # uint8 image + int64 index and label per sample
    assert disk.stack_block == 100 * (2352 + 8)  # every sample kept at most
    assert disk.generator_checkpoint == 12 * 1000  # float32 weights + Adam's two moments
    assert disk.classifier_checkpoints == 2 * 12 * 30  # best.ckpt and last.ckpt of each classifier
    assert disk.total == 236_800 + 236_000 + 12_000 + 720 and disk.kept == disk.total - 236_800
    # 5 generations to go, a stack of 3: every checkpoint, 3 blocks, and 5 shard folders (1 when deleted)
    assert run_total(disk, 5, 3, keep_raw_shards=True) == 5 * 236_800 + 3 * 236_000 + 5 * 12_720
    assert run_total(disk, 5, 3, keep_raw_shards=False) == 1 * 236_800 + 3 * 236_000 + 5 * 12_720


def test_classifier_parameters_are_counted_without_building_weights():
    assert classifier_parameters(ClassifierConfig(arch="resnet50"), 1000, 3) == 25_557_032  # torchvision's ResNet-50
    assert classifier_parameters(ClassifierConfig(arch="resnet18"), 10, 3) == 11_181_642


def test_a_filesystem_that_cannot_hold_the_next_generation_is_refused(tmp_path, monkeypatch):
    disk = estimate_generation_disk(14_500, (3, 512, 512), 0, [25_557_032])  # Hard ImageNet's S at 512
    assert disk.total / GIB == pytest.approx((14_500 * (2 * 786_432 + 24) + 24 * 25_557_032) / GIB)
    monkeypatch.setattr(disk_plan.shutil, "disk_usage", lambda path: Usage(100 * GIB, 90 * GIB, 20 * GIB))
    with pytest.raises(ConfigError) as error:
        check_disk(disk, 5, 3, tmp_path / "run", keep_raw_shards=True)
    message = str(error.value)
    assert message.startswith(f"not enough disk for the next generation in {tmp_path / 'run'}: it needs about "
                              "21.81 GiB") and "\n" not in message
    assert "20.00 GiB are free" in message
    # what an overwrite frees counts; the line says what the generations to go add
    line = check_disk(disk, 5, 3, tmp_path / "run", keep_raw_shards=False, reclaimable=2 * GIB)
    assert line.startswith("disk: about 21.81 GiB per generation (raw shards 10.62") and "22.00 GiB free" in line


def test_the_latent_cache_is_counted_per_block_and_once_for_the_real_images(tmp_path, monkeypatch):
    per_image = 2 * 4 * 64 * 64 * 4  # SD 1.5 at 512: float32 mean and std of a 4 x 64 x 64 latent
    disk = estimate_generation_disk(100, (3, 28, 28), 1000, [10, 20], latent_bytes_per_image=per_image)
    assert disk.latent_block == 100 * 131_072
    assert disk.total == 236_800 + 236_000 + 100 * 131_072 + 12_000 + 720
    real = 7 * per_image
    # the block latents are evicted with their blocks (3 kept); the real images' once
    assert run_total(disk, 5, 3, keep_raw_shards=True, once=real) == (
        5 * 236_800 + 3 * (236_000 + 100 * 131_072) + 5 * 12_720 + 7 * 131_072)
    monkeypatch.setattr(disk_plan.shutil, "disk_usage", lambda path: Usage(GIB, 0, disk.total + real - 1))
    with pytest.raises(ConfigError, match="the real images' latent cache 0.00 GiB"):
        check_disk(disk, 5, 3, tmp_path, keep_raw_shards=True, once=real)
    monkeypatch.setattr(disk_plan.shutil, "disk_usage", lambda path: Usage(GIB, 0, disk.total + real))
    assert "latent cache <= 0.01" in check_disk(disk, 5, 3, tmp_path, keep_raw_shards=True, once=real)


def test_stable_diffusion_reports_its_cached_latent_bytes_from_the_vae_config(tmp_path):
    import json

    from lightning_modules.stable_diffusion import StableDiffusionLoRA

    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "config.json").write_text(json.dumps({"latent_channels": 4,
                                                              "block_out_channels": [128, 256, 512, 512]}))
    sd = StableDiffusionLoRA(pretrained_path=str(tmp_path), class_names=["a"], train_resolution=512)
    assert sd.cached_latent_bytes == 131_072  # 8x downsampling: 2 x 4 x 64 x 64 float32
    off = StableDiffusionLoRA(pretrained_path=str(tmp_path), class_names=["a"], cache_latents=False)
    assert off.cached_latent_bytes == 0


def test_the_view_store_is_refused_where_its_filesystem_cannot_hold_it(tmp_path, monkeypatch):
    from simulation.disk_plan import check_view_store_disk

    assert check_view_store_disk(0, tmp_path) is None  # built already, or off
    monkeypatch.setattr(disk_plan.shutil, "disk_usage", lambda path: Usage(100 * GIB, 97 * GIB, 3 * GIB))
    with pytest.raises(ConfigError) as error:
        check_view_store_disk(int(3.7 * GIB), tmp_path / "views")  # Hard ImageNet's masked store at 224
    message = str(error.value)
    assert message.startswith(f"not enough disk for the view store in {tmp_path / 'views'}: decoding the real images "
                              "once needs about 3.70 GiB and 3.00 GiB are free there") and "\n" not in message
    assert "data.view_store false" in message
    line = check_view_store_disk(100 * 2**20, tmp_path / "views")
    assert line == f"view store: about 100.0 MiB to decode once into {tmp_path / 'views'}; 3.00 GiB free there"
