"""A fast CLI: each command imports the heavy libraries only where it needs them (which modules a fresh ``python
cli.py ...`` process has loaded when it exits; the times are benchmarks/bench_startup.py's, not a test's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.run_dirs import three_seeds

ROOT = Path(__file__).resolve().parents[2]
#: what each command must leave unloaded (top-level package names)
HEAVY = ("torch", "lightning", "torchvision", "torchmetrics", "transformers", "diffusers", "peft", "open_clip",
         "scipy", "matplotlib")
#: run cli.py as `python cli.py ARGS` does (runpy, as __main__), then print which of the packages named in the first
#: argument (comma-separated) were imported
PROBE = """
import json, runpy, sys
heavy = set(sys.argv[1].split(","))
sys.argv = ["cli.py", *sys.argv[2:]]
code = 0
try:
    runpy.run_path("cli.py", run_name="__main__")
except SystemExit as exit:
    code = exit.code or 0
print(json.dumps({"code": code, "loaded": sorted({m.split(".")[0] for m in sys.modules} & heavy)}))
"""


def loaded_by(*args: str) -> tuple[int, list[str]]:
    """(exit code, the HEAVY packages loaded) of ``python cli.py ARGS`` in a fresh interpreter."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", PROBE, ",".join(HEAVY), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["code"], result["loaded"]


@pytest.mark.parametrize("args", [(), ("--help",), ("report", "--help"), ("report",)])
def test_the_help_and_a_report_option_error_import_neither_torch_nor_lightning(args):
    code, loaded = loaded_by(*args)
    assert code == (2 if args == ("report",) else 0)  # `report` alone: the missing run_dirs and --out, one line
    assert loaded == []


def test_the_report_imports_no_lightning_nor_the_image_and_text_model_libraries(tmp_path):
    """The report reads runs and draws figures: torch (TensorBoard's writer, the readings), scipy and matplotlib,
    but not Lightning, torchvision, torchmetrics, transformers, diffusers, peft or open_clip."""
    three_seeds(tmp_path / "runs")
    code, loaded = loaded_by("report", str(tmp_path / "runs" / "*" / "seed_*"), "--out", str(tmp_path / "report"))
    assert code == 0 and (tmp_path / "report" / "summary.md").is_file()
    assert loaded == ["matplotlib", "scipy", "torch"]


def test_fit_help_lists_the_diffusion_generators_without_importing_diffusers():
    """``fit --help`` needs Lightning (the LightningCLI) and torchmetrics (Lightning imports it), not the libraries
    of the DDPM and Stable Diffusion generators or the CLIP filter, which load when a stage builds them."""
    code, loaded = loaded_by("fit", "--help")
    assert code == 0
    assert "lightning" in loaded and not {"diffusers", "peft", "open_clip"} & set(loaded)
