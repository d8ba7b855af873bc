"""Under DDP every rank encodes its own share of the latent cache's chunks, and every rank reads all of them."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.fakes.hard_imagenet import write_fake_hard_imagenet
from tests.fakes.tiny_sd import build_tiny_sd

ROOT = Path(__file__).resolve().parents[2]


def test_two_ranks_encode_disjoint_shares_and_read_the_same_cache(tmp_path):
    tiny_sd = build_tiny_sd(tmp_path / "sd")
    roots = write_fake_hard_imagenet(tmp_path / "data", n_train_per_class=2, n_val_per_class=1, size=24, width=32)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "helpers" / "ddp_latent_cache.py"), "2",
                           str(tmp_path), str(tiny_sd), *roots], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rank0, rank1 = (torch.load(tmp_path / f"latents_2_rank{r}.pt", weights_only=True) for r in (0, 1))
    # 30 training images in chunks of 8: chunks 0 and 2 (16 images) on rank 0, chunks 1 and 3 (8 + 6) on rank 1
    assert (rank0["encoded"], rank1["encoded"]) == (16, 14)
    assert torch.equal(rank0["moments"], rank1["moments"]) and rank0["moments"].shape == (30, 8, 8, 8)
    assert len(list((tmp_path / "latent_cache").glob("real-*.safetensors"))) == 4
