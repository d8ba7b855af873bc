"""Under DDP every rank draws its own training randomness; rank 0 draws what a one-process run draws."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from common.seeds import step_seed
from tests.fakes.tiny_sd import build_tiny_sd

ROOT = Path(__file__).resolve().parents[2]


def test_every_ddp_rank_draws_its_own_noise_timesteps_latents_and_dropout(tmp_path):
    tiny_sd = build_tiny_sd(tmp_path / "sd")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "helpers" / "ddp_training_randomness.py"), "2",
                           str(tmp_path), str(tiny_sd)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rank0, rank1 = (torch.load(tmp_path / f"draws_2_rank{r}.pt", weights_only=True) for r in (0, 1))
    # both ranks saw the same batches from the same weights: every difference is the RNG's
    for key in ("dcgan_z", "ddpm_noise", "ddpm_timesteps", "ddpm_labels", "sd_noise", "sd_timesteps"):
        assert rank0[key].shape == rank1[key].shape and len(rank0[key]) >= 1, key
        for step in range(len(rank0[key])):
            assert not torch.equal(rank0[key][step], rank1[key][step]), (key, step)
    first_masks = rank0["dropout_mask"][0], rank1["dropout_mask"][0]  # step 0: the same activations on both ranks
    assert first_masks[0].any() and not torch.equal(*first_masks)
    # the GAN's latents are the first draw after the seeder: rank 0 with a one-process run's seed, rank 1 its own
    for rank, draws in ((0, rank0), (1, rank1)):
        torch.manual_seed(step_seed(5, 0, 0, rank))
        assert torch.equal(draws["dcgan_z"][0], torch.randn(4, 8)), rank
    torch.manual_seed(step_seed(5, 0, 0))  # the seed every rank used before ranks had their own
    assert torch.equal(rank0["dcgan_z"][0], torch.randn(4, 8))
