"""Provenance end to end: every stage of a run records its environment in state.json, a resume under other versions
warns in one line, and the report shows the environments and warns on runs of different torch versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from reporting.report import report_main
from tests.e2e.test_cli import TINY, run_cli
from tests.fakes.run_dirs import make_run
from tests.in_process import run_cli_here


@pytest.fixture(scope="module")
def generation_zero_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("provenance") / "run"
    proc = run_cli("fit", "--config", TINY, "--loop.generations", "0", "--loop.run_dir", str(run_dir))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return run_dir


def test_every_stage_records_its_environment(generation_zero_run):
    state = json.loads((generation_zero_run / "state.json").read_text())
    assert set(state["stage_environment"]) == set(state["completed"]) == {"g0/classifier/tiny_cnn",
                                                                            "g0/evaluate/tiny_cnn"}
    (environment,) = state["environments"]  # both stages ran in one process
    assert environment["torch"] == torch.__version__ and environment["world_size"] == 1
    assert {"python", "torchvision", "lightning", "torchmetrics", "timm", "diffusers", "peft", "transformers",
            "open_clip", "cuda", "cudnn", "driver", "gpu_names", "gpu_count", "nodes", "omp_threads", "hostname",
            "slurm_job_id", "git_commit", "git_dirty"} <= environment.keys()


def test_a_resume_under_other_versions_warns_in_one_line(generation_zero_run):
    state_path = generation_zero_run / "state.json"
    state = json.loads(state_path.read_text())
    state["environments"][-1]["torch"] = "2.0.0"  # as if the stages so far ran under another torch
    state["completed"].remove("g0/evaluate/tiny_cnn")
    state["results"] = []
    state_path.write_text(json.dumps(state))
    proc = run_cli_here("fit", "--config", TINY, "--loop.generations", "0", "--loop.run_dir",
                        str(generation_zero_run))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    warnings = [line for line in (proc.stdout + proc.stderr).splitlines() if "other versions" in line]
    assert len(warnings) == 1 and f"torch 2.0.0 -> {torch.__version__}" in warnings[0], warnings
    assert "cuda" not in warnings[0]  # only what changed
    assert len(json.loads(state_path.read_text())["environments"]) == 2  # the resumed stage's own record


def test_report_shows_the_environment_and_warns_on_runs_of_different_torch(tmp_path, capsys):
    environment = {"python": "3.11.4", "torch": "2.5.1", "cuda": "12.1", "hostname": "node1", "world_size": 4,
                   "git_commit": "0123456789abcdef", "git_dirty": True}
    for seed, torch_version in ((0, "2.5.1"), (1, "2.6.0")):
        run = make_run(tmp_path / f"seed_{seed}", seed)
        state = json.loads((run / "state.json").read_text())
        state["environments"] = [{**environment, "torch": torch_version}]
        (run / "state.json").write_text(json.dumps(state))
    report_main([str(tmp_path / "seed_*")], str(tmp_path / "report"))
    err = capsys.readouterr().err
    assert "[genbias] warning: the compared runs come from different versions (torch 2.5.1 / 2.6.0)" in err
    summary = (tmp_path / "report" / "summary.md").read_text()
    section = summary[summary.index("## Environment"):]
    assert "**Warning**: the compared runs come from different versions (torch 2.5.1 / 2.6.0)" in section
    assert f"| `{tmp_path / 'seed_0'}` | 3.11.4 | 2.5.1 |" in section
    assert f"| `{tmp_path / 'seed_1'}` | 0123456789ab (dirty) | node1 |" in section
