"""Through ``cli.py fit``: the regimes' settings that are not defined stop the run with one line before any work, and
no product module names the sandbox's plug-ins (they run as any researcher's own code would)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from sandbox.loop_checks import FRESH_SETTINGS, WorldFit
from tests.in_process import run_cli_here

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = ("common", "metrics", "filters", "datamodules", "lightning_modules", "callbacks", "simulation",
                    "reporting", "scripts")
PLUGIN_NAMES = ("known_world", "KnownWorld", "perfect_generators", "ResamplingGenerator", "GaussianFitGenerator",
                "subgroup_filter", "SubgroupKeepRateFilter", "loop_checks", "closed_forms")


@pytest.mark.parametrize("fit, message", [
    (replace(FRESH_SETTINGS[0], generations=10),
     "data.regime.policy 'fresh' draws 1600 new real samples for each of the 11 generations (0-10), but the real "
     "training pool has 16000 samples and class 0 runs short by 8: lower data.regime.fresh_real_per_generation to "
     "at most 1400 or loop.generations"),
    (WorldFit("accumulate_p1", generator="resampling", stack_policy="accumulate", synthetic_share=1.0,
              num_classes=10),
     "data.regime.synthetic_share (p) must be in [0, 1), or 1 with data.regime.policy in ('fifo', 'replace') and "
     "data.regime.oversample false (no real data once the stack holds a block), got 1.0 with policy 'accumulate'"),
], ids=["fresh pool too small", "p = 1 under accumulate"])
def test_an_undefined_regime_is_one_line_and_exit_2_before_any_work(tmp_path, fit, message):
    run_dir = tmp_path / "run"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(fit.config(run_dir)))
    result = run_cli_here("fit", "--config", str(config))
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not run_dir.exists()


def test_no_product_file_names_the_sandbox_plugins():
    files = [ROOT / "cli.py", *(p for package in PRODUCT_PACKAGES for p in (ROOT / package).rglob("*.py"))]
    mentions = [f"{path.relative_to(ROOT)}: {name}" for path in files for name in PLUGIN_NAMES
                if name in path.read_text()]
    assert not mentions, mentions
