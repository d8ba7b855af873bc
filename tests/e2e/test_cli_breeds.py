"""BREEDS Living-17 through the CLI: fake ImageNet tree of the 68 subclasses + fake BREEDS hierarchy files, tiny
Stable Diffusion + LoRA, the learned subclass oracle, 2 generations."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.fakes.breeds import write_fake_imagenet_living17, write_living17_info
from tests.fakes.tiny_sd import build_tiny_sd

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "configs" / "tiny_living17.yaml")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("living17")
    imagenet_root = write_fake_imagenet_living17(root / "data", n_train_per_class=3, n_val_per_class=1, size=32,
                                                 width=48)  # landscape photos
    info_dir = write_living17_info(root / "breeds_info")
    sd_path = build_tiny_sd(root / "tiny_sd")
    return ["--data.source.init_args.imagenet_root", str(imagenet_root), "--data.source.init_args.info_dir", info_dir,
            "--model.init_args.pretrained_path", str(sd_path)]


def test_two_generation_loop_ranks_four_subclasses_and_measures_u_t_with_the_learned_oracle(tmp_path, assets):
    run_dir = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "fit", "--config", TINY, "--loop.run_dir",
                           str(run_dir), *assets], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in rows] == [0, 1, 2]
    for row in rows:
        assert row["dataset"] == "breeds_living17"
        # subgroup = subclass: 4 per superclass, ranked within each superclass (figure 7: best vs worst)
        assert len(row["acc_rank"]) == 4 and row["acc_rank"] == sorted(row["acc_rank"])
        assert len(row["group_acc"]) == 17 and all(len(accs) == 4 for accs in row["group_acc"])
        assert row["meo"] is not None and row["meo_class"] is not None and 0 <= row["meo_class"] <= 1
        assert row["n_real"] == 68 * 2  # 3 train images per subclass, 1 carved for validation
        assert row["ablation_acc"] is None  # no masks: no ablations
    # 34 generated = 2 per superclass; the filter drops half of each class -> 17 kept; the stack holds 3 blocks
    assert [(r["filter_kept"], r["stack_generations"]) for r in rows[1:]] == [(17, [1]), (17, [1, 2])]
    # u_t from the learned subclass oracle (trained once on the lazily decoded real split, kept in the run directory)
    assert all(r["imbalance_u"] is not None and 0 <= r["imbalance_u"] <= 1 for r in rows[1:])
    assert (run_dir / "oracle" / "checkpoints" / "best.ckpt").exists()
    assert proc.stdout.count("training the subgroup oracle") == 1
    # generated images are stored at the stack resolution (32), not at the classifiers' 24
    assert np.load(run_dir / "stack" / "gen_0002_images.npy", mmap_mode="r").shape == (17, 3, 32, 32)
