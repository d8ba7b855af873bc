"""The latent cache in a whole run (tiny Stable Diffusion on a fake Hard ImageNet): the same result rows as encoding
at every step, with each training image encoded once per run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL

from tests.fakes.hard_imagenet import tiny_hardimagenet_options, without_timing
from tests.in_process import run_cli_here

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "configs" / "tiny_hardimagenet.yaml")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return tiny_hardimagenet_options(tmp_path_factory.mktemp("latent_run"))


def run_counting_encodes(run_dir: Path, assets: list[str], cache: bool, monkeypatch) -> tuple[list[dict], int]:
    """The run's result rows and the number of images the VAE encoder saw."""
    seen = []
    original = AutoencoderKL.encode

    def counting(self, x, *args, **kwargs):
        seen.append(int(x.shape[0]))
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(AutoencoderKL, "encode", counting)
    proc = run_cli_here("fit", "--config", TINY, "--loop.run_dir", str(run_dir), "--loop.generator_epochs", "2",
                        "--loop.generator_batch_size", "1",
                        "--classifiers.max_epochs", "1", "--model.init_args.cache_latents", str(cache).lower(), *assets)
    monkeypatch.setattr(AutoencoderKL, "encode", original)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return rows, sum(seen)


def comparable(row: dict) -> dict:
    return without_timing(row)


def test_a_cached_run_gives_the_uncached_rows_and_encodes_each_image_once(tmp_path, assets, monkeypatch):
    uncached_rows, uncached = run_counting_encodes(tmp_path / "uncached", assets, False, monkeypatch)
    cached_rows, cached = run_counting_encodes(tmp_path / "cached", assets, True, monkeypatch)
    n_real = uncached_rows[0]["n_real"]
    block_1 = cached_rows[1]["stack_size"]  # generation 1's kept samples: the stack generation 2's generator sees
    n_synthetic_2 = uncached_rows[1]["n_synthetic"]  # what an epoch of generation 2's generator draws from it
    epochs = 2
    # before: every epoch of every generator encodes its whole epoch; after: each real image once, block 1 once
    # (generation 2's block is pushed after the last generator trained, so it is never encoded)
    assert uncached == epochs * n_real + epochs * (n_real + n_synthetic_2)
    assert cached == n_real + block_1
    assert len(cached_rows) == len(uncached_rows) == 3
    # the same latents drawn, so the same LoRA weights and the same rows, number for number: at a generator batch of
    # one image the encoder sees the same single images in the cache build as at the training steps (at larger
    # batches its float32 convolutions round differently per batch size, at about 1e-6)
    for generation in (1, 2):
        weights = [torch.load(tmp_path / run / f"gen_{generation:02d}" / "generator" / "checkpoints" / "last.ckpt",
                              weights_only=True)["state_dict"] for run in ("cached", "uncached")]
        assert weights[0].keys() == weights[1].keys()
        assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    for with_cache, without in zip(cached_rows, uncached_rows):
        assert comparable(with_cache) == comparable(without)
    parts = sorted(path.name.split("-")[0] for path in (tmp_path / "cached" / "latent_cache").glob("*.safetensors"))
    assert parts == ["block0001", "real"]


def test_the_plan_counts_the_latent_cache_and_builds_no_store(tmp_path, assets):
    """``fit --check`` prints the disk with the latent cache (per block and the real images once) and writes nothing:
    neither the run directory nor the view store beside it."""
    proc = run_cli_here("fit", "--config", TINY, "--loop.run_dir", str(tmp_path / "run"), "--check", *assets)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # tiny SD: 2 x 4 x 16 x 16 float32 = 8 KiB a latent; 30 samples a block, 45 real training images
    per_image = 2 * 4 * 16 * 16 * 4
    assert f"latent cache <= {30 * per_image / 2**30:.2f}" in proc.stdout
    assert f"latent cache of the real images {45 * per_image / 2**30:.2f} GiB once" in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_run_started_before_the_latent_cache_resumes_from_its_saved_config_without_it(tmp_path, assets):
    """The previous release saved no ``cache_latents``: such a saved config re-runs as it ran (``false``), under
    its recorded identity, rather than under today's default ``true`` and another identity."""
    run_dir = tmp_path / "before_the_cache"
    proc = run_cli_here("fit", "--config", TINY, "--loop.run_dir", str(run_dir), "--loop.generations", "0",
                        "--classifiers.max_epochs", "1", "--model.init_args.cache_latents", "false", *assets)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    saved = run_dir / "config.yaml"
    assert "    cache_latents: false\n" in saved.read_text()
    saved.write_text(saved.read_text().replace("    cache_latents: false\n", ""))  # as the previous release saved it
    check = run_cli_here("fit", "--config", str(saved), "--check")
    assert check.returncode == 0, check.stderr
    assert f"run directory: {run_dir} (resumes:" in check.stdout
    today = run_cli_here("fit", "--config", TINY, "--loop.run_dir", str(run_dir), "--loop.generations", "0",
                         "--classifiers.max_epochs", "1", *assets, "--check")  # today's default: another run
    assert today.returncode == 2 and "different config" in today.stderr and "cache_latents" in today.stderr
