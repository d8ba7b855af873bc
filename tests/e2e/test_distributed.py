"""DDP on CPU (gloo): evaluation equals a single process; the whole loop runs as 2 processes through the CLI."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_modules.classifier import ClassifierModule
from tests.in_process import run_cli_here

ROOT = Path(__file__).resolve().parents[2]


def env() -> dict:
    """Every process gets this process's torch thread count: left unset, Lightning gives each DDP rank cores / ranks
    threads, and another thread count may run other float kernels."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore",
            "OMP_NUM_THREADS": str(torch.get_num_threads())}


def evaluate(devices: int, checkpoint: Path) -> dict:
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "helpers" / "ddp_evaluate.py"), str(devices),
                           str(checkpoint)], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULTS "))
    return json.loads(line[len("RESULTS "):])


def test_ddp_evaluation_counts_every_test_sample_once_and_equals_one_process(tmp_path):
    torch.manual_seed(3)
    checkpoint = tmp_path / "tiny.pt"
    torch.save(ClassifierModule("tiny_cnn", 4, 3, (3, 16, 16)).state_dict(), checkpoint)
    # the metrics are functions of integer counts (argmax per sample): they are equal unless a top-2 logit gap is
    # within float32 rounding (~1e-8 here), and this network's smallest gap on the 101 images is 1.7e-4
    single, ddp = evaluate(1, checkpoint), evaluate(2, checkpoint)
    assert (single["world_size"], ddp["world_size"]) == (1, 2)
    assert int(torch.tensor(ddp["group_count"]).sum()) == 101  # no padding duplicates counted
    assert ddp["group_count"] == single["group_count"]
    for key in ("acc", "meo", "di", "md", "acc_rank", "meo_class", "di_class", "md_class", "group_tpr"):
        assert ddp[key] == pytest.approx(single[key], abs=1e-7, nan_ok=True), key


def ddp_command(run_dir: Path) -> list[str]:
    config = str(ROOT / "tests" / "configs" / "tiny_mnist.yaml")
    return [sys.executable, str(ROOT / "cli.py"), "fit", "--config", config, "--loop.run_dir", str(run_dir),
            "--trainer.devices", "2", "--trainer.strategy", "ddp"]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The tiny loop as 2 DDP processes through the CLI, uninterrupted."""
    run_dir = tmp_path_factory.mktemp("ddp") / "run"
    proc = subprocess.run(ddp_command(run_dir), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return run_dir, proc


def read_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def test_two_process_ddp_loop_through_the_cli(ddp_run):
    run_dir, proc = ddp_run
    assert "MEMBER: 2/2" in proc.stdout + proc.stderr
    rows = read_rows(run_dir)
    assert [r["generation"] for r in rows] == [0, 1, 2]  # written once, by rank 0
    assert [(r["filter_kept"], r["stack_generations"]) for r in rows[1:]] == [(90, [1]), (90, [2])]
    shards = sorted(p.name for p in (run_dir / "gen_01" / "shards").iterdir())
    # generation split across ranks: 100 samples in aligned batches of 50, one on each rank, each its own chunk
    assert shards == ["chunk_0000000000_0000000050.safetensors", "chunk_0000000050_0000000100.safetensors"]
    assert proc.stdout.count("[genbias] done") == 1
    info = json.loads((run_dir / "state.json").read_text())["stage_info"]  # data.batch_size is per device here
    assert (info["g1/generator"]["batch_per_device"], info["g1/generator"]["batch_global"]) == (64, 128)


def test_a_rank_killed_mid_stage_ends_the_launch_with_one_line_and_a_relaunch_resumes_identically(ddp_run, tmp_path):
    """Kill rank 1 (a child of rank 0 under Lightning's launcher) while generation 1's generator trains: rank 0's
    next collective fails, and the launch ends with one line naming rank 1 and the stage, exit code 1, lock released;
    the stages done before are kept and the same command resumes to the uninterrupted run's rows."""
    import signal

    run_dir = tmp_path / "run"
    proc = subprocess.Popen(ddp_command(run_dir), cwd=ROOT, env={**env(), "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if "generation 1/2 - training generator" in line:
            break
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 1, children  # Lightning's launcher started rank 1
    os.kill(int(children[0]), signal.SIGKILL)
    stderr = proc.stdout.read()  # what it printed after the kill (stdout and stderr)
    assert proc.wait(timeout=120) == 1, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    # gloo says "reset" or "closed" by peer, depending on where the dead rank's socket was
    assert len(errors) == 1 and re.fullmatch(
        rf"error: rank 1 \(pid {children[0]}\) has stopped during stage g1/generator \(this rank's collective failed: "
        r"Connection (reset|closed) by peer\); every completed stage is kept: re-run the same command to resume",
        errors[0]), stderr[-3000:]
    assert "Traceback" not in stderr and "Child process with PID" not in stderr, stderr[-3000:]
    state = json.loads((run_dir / "state.json").read_text())
    assert "g0/evaluate/tiny_cnn" in state["completed"] and "g1/generator" not in state["completed"]
    assert not (run_dir / ".lock").exists()  # released: the relaunch takes no stale lock over

    resumed = subprocess.run(ddp_command(run_dir), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    reference = read_rows(ddp_run[0])
    for got, expected in zip(read_rows(run_dir), reference, strict=True):
        for key in ("generation", "acc", "meo", "md", "acc_rank", "fid", "filter_kept", "quality_q"):
            assert got[key] == pytest.approx(expected[key], abs=1e-6), (got["generation"], key)


def test_ranks_started_together_resume_a_run_whose_next_stage_is_rank_zero_only(tmp_path):
    """torchrun (like srun) starts every rank at once: before any Trainer has made the process group, the other
    ranks must wait for rank 0's push stage (filters, FID, stack) instead of racing ahead on the old stack."""
    import signal

    run_dir = tmp_path / "run"
    config = str(ROOT / "tests" / "configs" / "tiny_mnist.yaml")
    proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "fit", "--config", config, "--loop.run_dir",
                             str(run_dir)], cwd=ROOT, env={**env(), "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:  # stop it once generation 1's block is recorded, before its push (rank-0-only work)
        if "stage g1/generate done" in line:  # the push's whole duration is the margin ("filters kept" left ~1 ms)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=120)
    state = json.loads((run_dir / "state.json").read_text())
    assert state["completed"][-1] == "g1/generate"
    resumed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
         str(ROOT / "cli.py"), "fit", "--config", config, "--loop.run_dir", str(run_dir), "--trainer.devices", "2",
         "--trainer.strategy", "ddp"], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [(r["generation"], r["n_synthetic"], r["stack_generations"]) for r in rows] == [
        (0, 0, []), (1, 90, [1]), (2, 90, [2])]


def generation_zero_arguments(run_dir: Path, *extra: str) -> list[str]:
    return ["fit", "--config", str(ROOT / "tests" / "configs" / "tiny_mnist.yaml"), "--loop.run_dir", str(run_dir),
            "--loop.generations", "0", "--data.batch_size_is_global", "true", *extra]


def fit_generation_zero(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *generation_zero_arguments(run_dir, *extra)],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)


def test_a_global_batch_is_the_same_on_two_processes_as_on_one(tmp_path):
    single = run_cli_here(*generation_zero_arguments(tmp_path / "one"))  # tests/in_process.py
    double = fit_generation_zero(tmp_path / "two", "--trainer.devices", "2", "--trainer.strategy", "ddp")
    for proc in (single, double):
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "tiny_cnn on 400 real + 0 synthetic samples/epoch" in single.stdout
    assert "batch 64 per device x 1 device = 64 global, lr 0.01" in single.stdout
    assert "batch 32 per device x 2 devices = 64 global, lr 0.01" in double.stdout
    infos = [json.loads((tmp_path / name / "state.json").read_text())["stage_info"]["g0/classifier/tiny_cnn"]
             for name in ("one", "two")]
    assert [(i["batch_per_device"], i["world_size"], i["batch_global"]) for i in infos] == [(64, 1, 64), (32, 2, 64)]
    assert infos[0]["steps"] == infos[1]["steps"] == 2 * 7  # 2 epochs of ceil(400 / 64) optimizer steps
    hparams = (tmp_path / "two" / "tensorboard" / "gen_00" / "tiny_cnn" / "hparams.yaml").read_text().splitlines()
    assert {"batch_global: 64", "batch_per_device: 32", "world_size: 2"} <= set(hparams)


def test_a_global_batch_that_does_not_divide_over_the_devices_is_refused_before_any_work(tmp_path, capsys):
    import cli

    run_dir = tmp_path / "run"
    code = cli.main(["fit", "--config", str(ROOT / "tests" / "configs" / "tiny_mnist.yaml"), "--loop.run_dir",
                     str(run_dir), "--data.batch_size_is_global", "true", "--data.batch_size", "63",
                     "--trainer.devices", "2", "--trainer.strategy", "ddp"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: data.batch_size_is_global: data.batch_size 63 cannot be split evenly over 2 "
                          "devices: make each global batch size a multiple of 2"), err
    assert not run_dir.exists()
