"""The class-conditional DDPM runs the loop like the DCGAN: trained, sampled, scored, pushed, reported."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "configs" / "tiny_mnist.yaml")
TINY_DDPM = json.dumps({"class_path": "lightning_modules.ddpm.ConditionalDDPM", "init_args": {
    "num_classes": 10, "image_shape": [3, 28, 28], "block_out_channels": [8, 16], "layers_per_block": 1,
    "attention": False, "norm_num_groups": 4, "num_train_timesteps": 50, "num_inference_steps": 4}})


def test_a_ddpm_generation_flows_through_the_loop(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "fit", "--config", TINY, "--model", TINY_DDPM,
                           "--loop.generations", "1", "--loop.run_dir", str(run_dir)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in rows] == [0, 1]
    assert rows[1]["fid"] > 0 and rows[1]["filter_kept"] == 90 and rows[1]["stack_generations"] == [1]
    assert "ConditionalDDPM" in proc.stdout and (run_dir / "gen_01" / "samples.png").stat().st_size > 0
