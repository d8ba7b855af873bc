"""Faults a real user meets: each ends in one clear line (exit code 2, no traceback) or in an exact recovery, and
never in lost or silently changed data. Bad inputs are checked in-process, faults by simulating them (truncate,
delete, a write that raises ENOSPC, a second launch, SIGKILL).

Where the fault is in the run directory (a deleted stack, a truncated checkpoint), the command that meets it runs
in this process (tests/in_process.py) on a copy of the session's finished tiny run (tests/e2e/conftest.py); where
the process itself is the fault (SIGKILL, a live first launch, a dead DDP rank), ``cli.py`` runs as a subprocess."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import cli
from records.checkpoint_io import readable_checkpoint
from tests.in_process import run_cli_here

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "configs" / "tiny_mnist.yaml")
COMPARED = ("acc", "meo", "md", "acc_rank", "n_synthetic", "stack_generations", "fid", "filter_kept", "quality_q")


def env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1"}


def fit_command(run_dir: Path | str, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "cli.py"), "fit", "--config", TINY, "--loop.run_dir", str(run_dir), *extra]


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def assert_same_results(actual: list[dict], expected: list[dict]) -> None:
    """Exact by design, not a tolerance for another kernel: both runs execute on this machine with the same torch
    thread count (this process's, inherited by its subprocesses), so every stage runs the same kernels on the same
    batches; abs=1e-6 is far below any metric's resolution (1 / test-set size)."""
    def keys(rows_):
        return [(r["generation"], r["classifier"]) for r in rows_]

    assert keys(actual) == keys(expected)
    for a, e in zip(actual, expected):
        for key in COMPARED:
            assert a[key] == pytest.approx(e[key], abs=1e-6), (a["generation"], key)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` and its bytes (to show that nothing was touched)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(code: int, err: str, *expected: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, (text, err)


@pytest.fixture
def finished_run(tiny_reference_run) -> Path:
    """A completed 2-generation tiny run (the session's, read-only): the reference every fault below is compared
    with."""
    return tiny_reference_run.run_dir


def copy_of(finished_run: Path, tmp_path: Path, name: str = "run") -> Path:
    run_dir = tmp_path / name
    shutil.copytree(finished_run, run_dir)
    (run_dir / ".lock").unlink(missing_ok=True)
    return run_dir


def fit_here(run_dir: Path | str, *extra: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``python cli.py fit`` on the tiny config, run in this process (tests/in_process.py)."""
    return run_cli_here("fit", "--config", TINY, "--loop.run_dir", str(run_dir), *extra, cwd=cwd)


def forget_last_classifier(run_dir: Path) -> Path:
    """Make generation 2's classifier stages unfinished (as if killed mid-training); returns its last.ckpt."""
    state = json.loads((run_dir / "state.json").read_text())
    state["completed"] = [k for k in state["completed"] if k not in ("g2/classifier/tiny_cnn", "g2/evaluate/tiny_cnn")]
    state["results"] = [r for r in state["results"] if r["generation"] != 2]
    (run_dir / "state.json").write_text(json.dumps(state))
    return run_dir / "gen_02" / "classifiers" / "tiny_cnn" / "checkpoints" / "last.ckpt"


# =============================================================================================== bad input
def not_a_run(tmp_path: Path) -> tuple[Path, list[str]]:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("months of work")
    return folder, ["--loop.overwrite", "true"]


def a_file(tmp_path: Path) -> tuple[Path, list[str]]:
    (tmp_path / "run").write_text("not a folder")
    return tmp_path / "run", []


def corrupt_state(tmp_path: Path) -> tuple[Path, list[str]]:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "state.json").write_text('{"completed": ["g0/classif')
    (folder / "config.yaml").write_text("seed_everything: 0\n")
    return folder, []


def locked_by_a_live_launch(tmp_path: Path) -> tuple[Path, list[str]]:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".lock").write_text(json.dumps({"host": os.uname().nodename, "pid": 1,  # a live process
                                              "launch_id": "local-another-launch", "started": "earlier"}))
    return folder, ["--loop.overwrite", "true"]  # overwrite must not delete a live run either


BAD_RUN_DIRECTORIES = [
    (not_a_run, ["is not a run of this tool", "never deletes what it did not create", "thesis.tex"]),
    (a_file, ["is a file, not a folder"]),
    (corrupt_state, ["cannot be read", "state.json"]),
    (locked_by_a_live_launch, ["is in use by another launch", "pid 1 on host"]),
]


@pytest.mark.parametrize("make, expected", BAD_RUN_DIRECTORIES, ids=[m.__name__ for m, _ in BAD_RUN_DIRECTORIES])
def test_a_run_directory_that_cannot_be_used_is_refused_untouched(tmp_path, capsys, make, expected):
    target, extra = make(tmp_path)
    before = snapshot(tmp_path)
    code = cli.main(["fit", "--config", TINY, "--loop.run_dir", str(target), *extra])
    one_line_error(code, capsys.readouterr().err, *expected)
    assert snapshot(tmp_path) == before


def test_a_folder_that_cannot_be_written_is_refused_before_anything_is_created(tmp_path, capsys, monkeypatch):
    parent = tmp_path / "read_only"
    parent.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == parent else real_access(path, mode))
    code = cli.main(["fit", "--config", TINY, "--loop.run_dir", str(parent / "run")])
    one_line_error(code, capsys.readouterr().err, "permission denied", str(parent))
    assert list(parent.iterdir()) == []


def test_overwrite_replaces_only_a_run_of_the_tool_and_says_what_it_removed(finished_run, tmp_path):
    run_dir = copy_of(finished_run, tmp_path)
    proc = fit_here(run_dir, "--loop.overwrite", "true", "--loop.generations", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "removed the previous run" in proc.stdout and "12 completed stages, 3 result rows" in proc.stdout
    assert [r["generation"] for r in rows(run_dir)] == [0] and not (run_dir / "gen_01").exists()


# =============================================================================================== faults
def test_a_deleted_stack_stops_the_run_and_is_rebuilt_exactly_when_asked(finished_run, tmp_path):
    run_dir = copy_of(finished_run, tmp_path)
    manifest = (run_dir / "stack" / "manifest.json").read_text()
    state = (run_dir / "state.json").read_text()
    shutil.rmtree(run_dir / "stack")
    proc = fit_here(run_dir)
    one_line_error(proc.returncode, proc.stderr, "does not match the run state", "generation 2's block is missing",
                   "--loop.rebuild_stack true")
    assert json.loads((run_dir / "state.json").read_text())["completed"] == json.loads(state)["completed"]
    proc = fit_here(run_dir, "--loop.rebuild_stack", "true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "checksums match the run state" in proc.stdout
    assert (run_dir / "stack" / "manifest.json").read_text() == manifest
    assert_same_results(rows(run_dir), rows(finished_run))


def test_a_deleted_stack_manifest_is_named_too(finished_run, tmp_path):
    run_dir = copy_of(finished_run, tmp_path)
    (run_dir / "stack" / "manifest.json").unlink()
    proc = fit_here(run_dir)
    assert proc.returncode == 2 and "generation 2's block is missing" in proc.stderr


def test_a_truncated_checkpoint_is_set_aside_and_the_stage_restarts(finished_run, tmp_path):
    run_dir = copy_of(finished_run, tmp_path)
    checkpoint = forget_last_classifier(run_dir)
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # a disk that filled up mid-copy
    proc = fit_here(run_dir)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"checkpoint {checkpoint} cannot be read" in proc.stdout
    assert checkpoint.with_name("last.ckpt.corrupt").exists() and readable_checkpoint(checkpoint)
    assert_same_results(rows(run_dir), rows(finished_run))


class Payload:
    """Stands for an object a tampered checkpoint would make torch unpickle (and run code)."""


def test_a_checkpoint_with_pickled_objects_is_never_unpickled(finished_run, tmp_path):
    run_dir = copy_of(finished_run, tmp_path)
    checkpoint = forget_last_classifier(run_dir)
    torch.save({"state_dict": {}, "payload": Payload()}, checkpoint)
    proc = fit_here(run_dir)
    assert proc.returncode == 2 and "cannot be loaded as tensors and plain data" in proc.stderr
    assert "Traceback" not in proc.stderr and checkpoint.with_name("last.ckpt.corrupt").exists()
    proc = fit_here(run_dir)  # re-running restarts the stage from scratch
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_same_results(rows(run_dir), rows(finished_run))


def test_a_full_disk_names_the_file_leaves_no_partial_file_and_the_run_resumes(finished_run, tmp_path, capsys,
                                                                             monkeypatch):
    import common.io

    run_dir = tmp_path / "run"
    real_replace = os.replace

    def full_disk(source, target):
        if Path(target).name == "samples.png":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(source, target)

    monkeypatch.setattr(common.io.os, "replace", full_disk)
    code = cli.main(["fit", "--config", TINY, "--loop.run_dir", str(run_dir)])
    one_line_error(code, capsys.readouterr().err, "no space left on the device while writing",
                   "gen_01/samples.png", "GiB free")
    assert not (run_dir / "gen_01" / "samples.png").exists()
    assert not [p for p in run_dir.rglob(".tmp-*")]  # no temporary file left behind
    monkeypatch.undo()
    proc = fit_here(run_dir)
    assert proc.returncode == 0 and "resuming" in proc.stdout, proc.stderr[-2000:]
    assert_same_results(rows(run_dir), rows(finished_run))


def test_a_run_is_found_however_its_path_is_typed_and_after_it_moved(finished_run, tmp_path):
    run_dir = copy_of(finished_run, tmp_path)
    for spelling, cwd in ((f"{run_dir}/", ROOT), ("./run", tmp_path), ("run//", tmp_path)):
        proc = fit_here(spelling, cwd=cwd)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "resuming" in proc.stdout and "training" not in proc.stdout
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    run_dir.rename(moved)
    proc = fit_here(moved)
    assert proc.returncode == 0 and "resuming" in proc.stdout and "training" not in proc.stdout
    assert_same_results(rows(moved), rows(finished_run))


def test_a_second_launch_on_a_live_run_is_refused_and_cannot_overwrite_it(tmp_path):
    run_dir = tmp_path / "run"
    first = subprocess.Popen(fit_command(run_dir), cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / ".lock").exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        first.send_signal(signal.SIGSTOP)  # the first launch holds the lock, alive, for as long as this test needs
        for extra in ([], ["--loop.overwrite", "true"]):
            second = fit_here(run_dir, *extra)
            assert second.returncode == 2 and "is in use by another launch" in second.stderr, second.stdout[-2000:]
        first.send_signal(signal.SIGCONT)
        output, _ = first.communicate(timeout=600)
    finally:
        first.kill()
    assert first.returncode == 0, output[-2000:]
    assert "removed the previous run" not in output and len(rows(run_dir)) == 3
    assert not (run_dir / ".lock").exists()  # released at the end


def test_a_generator_stage_killed_after_its_first_epoch_resumes_exactly_without_redoing_it(tmp_path):
    options = ["--loop.generations", "1", "--loop.generator_epochs", "3", "--loop.generator_batch_size", "8"]
    reference = tmp_path / "reference"
    assert fit_here(reference, *options).returncode == 0
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(fit_command(run_dir, *options), cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    checkpoint = run_dir / "gen_01" / "generator" / "checkpoints" / "last.ckpt"
    for line in proc.stdout:
        if "generator: epoch 1/3 done" in line:
            while not readable_checkpoint(checkpoint):  # written right after the epoch's line
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    resumed = fit_here(run_dir, *options)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "generator: resumed at epoch 2/3" in resumed.stdout
    assert "generator: epoch 1/3 done" not in resumed.stdout  # the first epoch was not trained again
    assert_same_results(rows(run_dir), rows(reference))


def test_mid_epoch_generator_checkpoints_resume_exactly(tmp_path):
    options = ["--loop.generations", "1", "--loop.generator_epochs", "2", "--loop.generator_batch_size", "8",
               "--loop.generator_checkpoint_every_n_steps", "20"]
    reference = tmp_path / "reference"
    assert fit_here(reference, *options).returncode == 0
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(fit_command(run_dir, *options), cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    checkpoint = run_dir / "gen_01" / "generator" / "checkpoints" / "last.ckpt"
    for line in proc.stdout:
        if "training generator" in line:
            while not readable_checkpoint(checkpoint):  # step 20 of the first epoch's 50
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert torch.load(checkpoint, weights_only=True)["global_step"] % 50 != 0  # killed inside an epoch
    resumed = fit_here(run_dir, *options)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_results(rows(run_dir), rows(reference))


def test_when_rank_zero_dies_the_other_rank_exits_soon(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(fit_command(run_dir, "--trainer.devices", "2", "--trainer.strategy", "ddp"), cwd=ROOT,
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if "generation 1/2 - training generator" in line:
            break
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert children, "Lightning's launcher started no other rank"
    proc.send_signal(signal.SIGKILL)  # rank 0
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    alive = children
    while alive and time.monotonic() < deadline:
        time.sleep(0.5)
        alive = [pid for pid in alive if subprocess.run(["kill", "-0", pid], capture_output=True).returncode == 0]
    assert not alive, f"rank(s) {alive} still running 30 s after rank 0 died"


def test_a_disk_too_small_for_the_next_generation_is_refused_before_anything_is_created(tmp_path, capsys,
                                                                                         monkeypatch):
    import simulation.disk_plan

    run_dir = tmp_path / "run"
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(simulation.disk_plan.shutil, "disk_usage",
                        lambda path: usage._replace(free=100_000))  # the tiny run needs ~0.6 MB per generation
    code = cli.main(["fit", "--config", TINY, "--loop.run_dir", str(run_dir)])
    one_line_error(code, capsys.readouterr().err, "not enough disk for the next generation", "0.00 GiB are free",
                   "raw shards 0.00, stack block <= 0.00")
    assert not run_dir.exists()


def test_raw_shards_are_deleted_exactly_once_their_push_is_recorded_and_the_run_resumes(finished_run, tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(fit_command(run_dir, "--loop.keep_raw_shards", "false"), cwd=ROOT, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in proc.stdout:  # stop it at the end of generation 2's generate stage (its shards written, not pushed):
        output.append(line)  # the gates' FID line leaves the rest of that stage and the push before g2/push is
        if "FID generation 2:" in line:  # recorded (a kill at "filters kept" raced the push's last milliseconds)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    text = "".join(output)
    assert "disk: about 0.00 GiB per generation" in text and "the 2 generation(s) to go add about" in text
    state = json.loads((run_dir / "state.json").read_text())
    assert "g1/push" in state["completed"] and "g2/push" not in state["completed"]
    assert state["raw_shards_deleted"] == [1]
    assert not (run_dir / "gen_01" / "shards").exists() and any((run_dir / "gen_02" / "shards").iterdir())
    assert (run_dir / "gen_01" / "block_scores.safetensors").exists()  # only the raw block goes
    resumed = fit_here(run_dir, "--loop.keep_raw_shards", "false")
    assert resumed.returncode == 0 and "resuming" in resumed.stdout, resumed.stderr[-2000:]
    assert json.loads((run_dir / "state.json").read_text())["raw_shards_deleted"] == [1, 2]
    assert not (run_dir / "gen_02" / "shards").exists()
    assert_same_results(rows(run_dir), rows(finished_run))  # keeping the shards or not changes nothing computed
    shutil.rmtree(run_dir / "stack")
    proc = fit_here(run_dir, "--loop.rebuild_stack", "true")
    one_line_error(proc.returncode, proc.stderr, "--loop.rebuild_stack cannot re-create the stack",
                   "generation(s) [2]", "loop.keep_raw_shards: false")
