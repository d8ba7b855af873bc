"""The CLI's front door: what `--help` offers, and where a run lands by default."""

import os
import subprocess
import sys
from pathlib import Path

from tests.in_process import run_cli_here

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "configs" / "tiny_mnist.yaml")


def cli(*args: str) -> subprocess.CompletedProcess:
    """``python cli.py ARGS`` as a subprocess: the help a user's terminal shows (wide, so no name is wrapped)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "COLUMNS": "400"}
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_top_level_help_lists_every_subcommand():
    out = run_cli_here("--help").stdout  # in this process (tests/in_process.py)
    assert "usage: cli.py {fit,report,sandbox}" in out and "python cli.py report RUN_DIR... --out DIR" in out
    assert "python cli.py sandbox configs/sandbox/gaussian_mixture.yaml" in out


def test_fit_help_lists_every_generator_and_data_source_and_documents_the_quality_options():
    out = " ".join(cli("fit", "--help").stdout.split())
    for name in ("lightning_modules.dcgan.ConditionalDCGAN", "lightning_modules.ddpm.ConditionalDDPM",
                 "lightning_modules.stable_diffusion.StableDiffusionLoRA", "datamodules.colored_mnist.ColoredMNIST",
                 "datamodules.cifar.CIFAR20", "datamodules.hard_imagenet.HardImageNet", "datamodules.breeds.Living17"):
        assert name in out, name
    assert "Quality gates of every generated block:" in out and "Args::" not in out
    assert "generation-0 classifier (by name) used as FID feature extractor" in out
    assert "--ckpt_path" not in out and "--weights_only" not in out  # the loop resumes and loads safely itself


def test_the_default_run_directory_is_named_after_the_experiment_not_an_overrides_file(tmp_path):
    overrides = tmp_path / "short.yaml"
    overrides.write_text("loop:\n  generations: 0\n")
    proc = run_cli_here("fit", "--config", TINY, "--config", str(overrides), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "runs" / "tiny_mnist" / "seed_0" / "results.jsonl").exists()
    assert not (tmp_path / "runs" / "short").exists()
