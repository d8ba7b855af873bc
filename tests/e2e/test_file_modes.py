"""Every file a run writes follows the umask: ``0o666 & ~umask``, as any plain ``open(path, "w")`` gives, so a
colleague, a TensorBoard server or a report run by another account reads a run on a shared file system as the lab's
umask allows. A real tiny run (one generation: checkpoints, the stack, samples.png, contact sheets, the CSV and MLflow
loggers) at umask 022 and at 002 (a shared group), every file and folder of its run directory checked."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.e2e.test_cli import TINY
from tests.in_process import run_cli_here

#: files every such run holds (so the check below covers what the issue named, not only what happened to be there)
NAMED = ["state.json", "results.jsonl", "config.yaml", "stack/manifest.json", "stack/gen_0001_images.npy",
         "gen_01/samples.png", "gen_01/generator/checkpoints/last.ckpt",
         "gen_01/classifiers/tiny_cnn/checkpoints/best.ckpt", "gen_01/block_scores.safetensors", "csv/summary.csv",
         "mlflow.db"]


@pytest.fixture(scope="module", params=[0o022, 0o002], ids=["umask022", "umask002"])
def run_under_umask(request, tmp_path_factory) -> tuple[Path, int]:
    run_dir = tmp_path_factory.mktemp(f"umask{request.param:03o}") / "run"
    loggers = [{"kind": "csv"}, {"kind": "mlflow"}]
    previous = os.umask(request.param)
    try:
        proc = run_cli_here("fit", "--config", TINY, "--loop.generations", "1", "--loop.run_dir", str(run_dir),
                            "--loop.loggers", json.dumps(loggers))
    finally:
        os.umask(previous)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return run_dir, request.param


def test_every_file_and_folder_of_a_run_follows_the_umask(run_under_umask):
    run_dir, umask = run_under_umask
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {str(p.relative_to(run_dir)) for p in files} >= set(NAMED)
    wrong = {str(p.relative_to(run_dir)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files
             if stat.S_IMODE(p.stat().st_mode) != 0o666 & ~umask}
    assert not wrong, f"expected {oct(0o666 & ~umask)}"
    folders = [run_dir, *(p for p in run_dir.rglob("*") if p.is_dir())]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o777 & ~umask for p in folders)
