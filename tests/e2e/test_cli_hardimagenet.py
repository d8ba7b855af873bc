"""Hard ImageNet through the CLI: fake image/mask tree + tiny Stable Diffusion + LoRA, 2 generations."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cli
from tests.fakes.hard_imagenet import write_fake_hard_imagenet
from tests.fakes.tiny_sd import build_tiny_sd
from tests.in_process import run_cli_here

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "configs" / "tiny_hardimagenet.yaml")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("hardimagenet")
    imagenet_root, mask_root = write_fake_hard_imagenet(root / "data", size=48, width=64)  # landscape photos
    sd_path = build_tiny_sd(root / "tiny_sd")
    return ["--data.source.init_args.imagenet_root", str(imagenet_root),
            "--data.source.init_args.mask_root", str(mask_root), "--model.init_args.pretrained_path", str(sd_path)]


def test_two_generation_loop_logs_ablations_and_fills_the_stack(tmp_path, assets):
    run_dir = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "fit", "--config", TINY, "--loop.run_dir",
                           str(run_dir), *assets], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in rows] == [0, 1, 2]
    for row in rows:
        assert set(row["ablation_acc"]) == {"clean", "gray_object", "gray_box", "tile_box"}
        assert set(row["ablation_drop"]) == {"gray_object", "gray_box", "tile_box"}
        for kind, drop in row["ablation_drop"].items():
            assert drop == pytest.approx(row["ablation_acc"]["clean"] - row["ablation_acc"][kind])
        assert row["ablation_acc"]["clean"] == pytest.approx(row["acc"], abs=1e-6)
        assert len(row["ablation_acc_class"]["clean"]) == 15
        assert row["meo"] is None and row["acc_rank"] == []  # no known subgroups in Hard ImageNet
    # 30 generated = 2 per class; the filter drops 60% per class -> 1 per class kept; the stack holds 3 blocks
    assert [(r["filter_kept"], r["stack_generations"]) for r in rows[1:]] == [(15, [1]), (15, [1, 2])]
    # checkpoints of the generator hold only the LoRA weights
    import torch

    ckpt = torch.load(run_dir / "gen_01" / "generator" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["state_dict"] and all("lora" in k for k in ckpt["state_dict"])
    # generated images are stored at the stack resolution (32), not at the classifiers' 24
    import numpy as np

    assert np.load(run_dir / "stack" / "gen_0002_images.npy", mmap_mode="r").shape == (15, 3, 32, 32)
    for row in rows[1:]:
        assert row["fid"] > 0 and row["fid_kept"] > 0 and row["fid_kept"] != row["fid"]
    assert (run_dir / "gen_01" / "fid_real_statistics.safetensors").exists()
    from PIL import Image

    sheet = Image.open(next((run_dir / "gen_01" / "contact_sheets").glob("*.png")))
    # the review sheets show what the classifiers see: 3 rows of 10 cells holding 24 px images upscaled x3 (72 px)
    # above their captions; the stored 32 px images would be upscaled x2 (64 px)
    from common.image_grids import _SheetLayout

    seen, stored = _SheetLayout((24, 24), [0], [None]), _SheetLayout((32, 32), [0], [None])
    assert (seen.image_h, stored.image_h) == (72, 64)
    assert sheet.size[1] == 3 * seen.cell_h != 3 * stored.cell_h


def test_missing_data_and_weights_are_listed_before_any_work(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = cli.main(["fit", "--config", str(ROOT / "configs" / "hardimagenet.yaml"), "--loop.run_dir", str(run_dir),
                     "--data.source.init_args.imagenet_root", str(tmp_path / "no_imagenet"),
                     "--data.source.init_args.mask_root", str(tmp_path / "no_masks")])
    err = capsys.readouterr().err
    assert code == 2
    # every missing thing is listed at once, each with where to get it
    for expected in ("no_imagenet does not exist", "no_masks does not exist", "image-net.org",
                     "mmoayeri/HardImageNet", "huggingface-cli download stable-diffusion-v1-5",
                     "resnet50-11ad3fa6.pth", "timm/deit_small_patch16_224", "ViT-B-32"):
        assert expected in err, expected
    assert "Traceback" not in err
    assert not run_dir.exists()


def test_the_sd_generator_killed_mid_epoch_resumes_from_its_step_checkpoint_exactly(tmp_path, assets):
    """The paper SD configs checkpoint every loop.generator_checkpoint_every_n_steps optimizer steps: a stage killed
    inside an epoch resumes from the last such checkpoint and trains to the same LoRA weights as an uninterrupted
    run (at batch 2, an epoch of the fake tree is about 28 steps; a checkpoint comes every 4)."""
    import signal

    import torch

    from records.checkpoint_io import readable_checkpoint

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1"}
    options = ["--loop.generations", "1", "--loop.generator_batch_size", "2",
               "--loop.generator_checkpoint_every_n_steps", "4", *assets]

    def command(run_dir):
        return [sys.executable, str(ROOT / "cli.py"), "fit", "--config", TINY, "--loop.run_dir", str(run_dir), *options]

    reference = tmp_path / "reference"  # uninterrupted, and the resume below: in this process (tests/in_process.py)
    proc = run_cli_here(*command(reference)[2:])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(command(run_dir), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    checkpoint = run_dir / "gen_01" / "generator" / "checkpoints" / "last.ckpt"
    for line in proc.stdout:
        if "training generator" in line:
            while not readable_checkpoint(checkpoint):
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    expected = torch.load(reference / "gen_01" / "generator" / "checkpoints" / "last.ckpt", weights_only=True)
    step = torch.load(checkpoint, weights_only=True)["global_step"]
    assert step % 4 == 0 and 0 < step < expected["global_step"]  # killed inside the (only) epoch
    resumed = run_cli_here(*command(run_dir)[2:])
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming the generator's training from" in resumed.stdout
    final = torch.load(checkpoint, weights_only=True)
    assert final["global_step"] == expected["global_step"]
    assert final["state_dict"].keys() == expected["state_dict"].keys()
    # bit for bit by design: the resumed and the uninterrupted run train on this machine with the same thread count,
    # the same batches and the same restored RNG states, so they run the same kernels in the same order
    for key, value in expected["state_dict"].items():
        torch.testing.assert_close(final["state_dict"][key], value, rtol=0, atol=0, msg=key)
