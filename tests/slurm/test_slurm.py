"""scripts/slurm/fit.sbatch on a real (local, one-node) SLURM cluster: DDP over SLURM tasks, requeue + resume.

Needs a cluster: `sudo .ci/setup-slurm` brings one up on this machine (CI does it). About 2 minutes in all:
one uninterrupted 2-task run of tests/configs/tiny_mnist.yaml, one run preempted in generation 1.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "scripts/slurm/fit.sbatch"
CONFIG = "tests/configs/tiny_mnist.yaml"
METRIC_KEYS = ("acc", "meo", "di", "md", "meo_class", "di_class", "md_class")
FINISHED_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"}
JOB_TIMEOUT_S = 240


def _cluster_unavailable() -> str | None:
    """Why the tests cannot run here, or None."""
    if shutil.which("sbatch") is None:
        return "sbatch not found: no SLURM client here (run `.ci/setup-slurm` as root to set up a local cluster)"
    try:
        idle = subprocess.run(["sinfo", "-h", "-t", "idle", "-o", "%n"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"sinfo failed ({err}): is slurmctld running? (run `.ci/setup-slurm` as root)"
    if idle.returncode != 0 or not idle.stdout.strip():
        return f"sinfo shows no idle SLURM node ({(idle.stderr or idle.stdout).strip() or 'empty'}): " \
               "run `.ci/setup-slurm` as root"
    return None


_UNAVAILABLE = _cluster_unavailable()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(_UNAVAILABLE is not None, reason=_UNAVAILABLE or "")]


# ================================================================================================ helpers
def _sbatch(log: Path, *cli_args: str, ntasks_per_node: int = 2, wait: bool = False,
            timeout: float = JOB_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Submit the template from the repository root (as users do); with ``wait`` block until the job ends and
    return its exit code as ``sbatch --wait`` does. (``sbatch --wait`` itself looks at the job 2, 10 and 42 s after
    submitting it: a 12 s job returns after 42 s. This looks every half second.)"""
    # the template's header asks a GPU and 8 CPUs a task: a CPU-only cluster's submission overrides both
    cmd = ["sbatch", "--parsable", f"--ntasks-per-node={ntasks_per_node}", "--gres=none", "--cpus-per-task=1",
           f"--output={log}", "--job-name=genbias-test", SCRIPT, *cli_args]
    submitted = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30)
    if not wait or submitted.returncode != 0:
        return submitted
    job_id = _job_id(submitted)

    def ended() -> dict | None:
        fields = _job_fields(job_id)
        return fields if fields.get("JobState") in FINISHED_STATES else None

    try:
        fields = _wait_for(ended, "the job to end", job_id, log, timeout)
    except AssertionError:
        _cancel(job_id)
        raise
    code = int(fields.get("ExitCode", "1:0").split(":")[0])
    return subprocess.CompletedProcess(cmd, code, submitted.stdout, submitted.stderr)


def _job_id(submitted: subprocess.CompletedProcess) -> str:
    match = re.search(r"^(\d+)", submitted.stdout.strip())
    assert match, f"sbatch did not print a job id: {submitted.stdout!r} {submitted.stderr!r}"
    return match.group(1)


def _job_fields(job_id: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, f"scontrol show job {job_id} failed: {out.stderr}"
    return dict(field.split("=", 1) for field in out.stdout.split() if "=" in field)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _wait_for(predicate, what: str, job_id: str, log: Path, timeout: float = JOB_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (job {job_id}); "
                         f"log:\n{_read(log)[-3000:]}")


def _fit_args(run_dir: Path) -> tuple[str, ...]:
    return (CONFIG, "--trainer.accelerator", "cpu", "--loop.run_dir", str(run_dir))


def _results(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]


def _same_values(a, b, tol: float = 1e-6) -> bool:
    """Equal within ``tol``, for numbers, None (NaN in the results) and nested lists of them."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_values(x, y, tol) for x, y in zip(a, b))
    if a is None or b is None:
        return a is b
    return abs(float(a) - float(b)) <= tol


def _finished_releasing_requeued(job_id: str, hold_s: float = 3.0):
    """A predicate for `_wait_for`: the job's fields once it has ended. SLURM holds a requeued job back for a while
    (Reason=BeginTime); it is released (StartTime=now, keeps the test short) only once it has been pending a few
    seconds, because slurmd refuses a job restarted within the second its previous run was killed ("Job credential
    revoked"), which fails it."""
    pending_since: list[float] = []

    def finished() -> dict | None:
        fields = _job_fields(job_id)
        if fields.get("JobState") == "PENDING" and fields.get("Reason") == "BeginTime":
            pending_since[:] = pending_since or [time.monotonic()]
            if time.monotonic() - pending_since[0] >= hold_s:
                subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], timeout=20)
        return fields if fields.get("JobState") in FINISHED_STATES else None

    return finished


def _cancel(job_id: str | None) -> None:
    if job_id:
        subprocess.run(["scancel", job_id], capture_output=True, timeout=20)


# ================================================================================================ fixtures
@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, str]:
    """One complete 2-task DDP run, submitted and waited for: the end-to-end check and the reference for the requeue
    test."""
    tmp = tmp_path_factory.mktemp("slurm_ref")
    log, run_dir = tmp / "job.log", tmp / "run"
    submitted = _sbatch(log, *_fit_args(run_dir), wait=True)
    job_id = _job_id(submitted)
    assert submitted.returncode == 0, f"job {job_id} failed (rc {submitted.returncode}); log:\n{_read(log)[-3000:]}"
    return run_dir, _read(log)


# ================================================================================================ tests
@pytest.mark.parametrize(("override", "message"), [
    (("--trainer.devices", "1"), "--trainer.devices 1 does not match the allocation's 2 task(s) per node"),
    (("--trainer.num_nodes=3",), "--trainer.num_nodes 3 does not match the allocation's 1 node(s)"),
])
def test_devices_that_disagree_with_the_allocation_are_refused_before_the_run(tmp_path, override, message):
    log = tmp_path / "job.log"
    submitted = _sbatch(log, *_fit_args(tmp_path / "run"), *override, wait=True, timeout=60)
    assert submitted.returncode != 0
    text = _read(log)
    assert message in text
    assert "srun" not in text and not (tmp_path / "run").exists()  # refused before any task started


def test_missing_config_is_reported(tmp_path):
    log = tmp_path / "job.log"
    submitted = _sbatch(log, "configs/does_not_exist.yaml", wait=True, timeout=60)
    assert submitted.returncode != 0
    assert "config file 'configs/does_not_exist.yaml' not found" in _read(log)


def test_sbatch_runs_the_loop_as_two_ddp_ranks(uninterrupted):
    run_dir, log = uninterrupted
    # Lightning took its ranks from SLURM (2 tasks -> world size 2), no launcher of its own
    assert "Initializing distributed: GLOBAL_RANK: 0, MEMBER: 1/2" in log
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in log
    assert "1 node(s) x 2 task(s), 1 CPU(s) per task" in log
    assert "--data.num_workers 0" in log  # the tiny config does not pin its workers: CPUs - 1 of them
    rows = _results(run_dir)
    assert [(r["generation"], r["classifier"]) for r in rows] == [(0, "tiny_cnn"), (1, "tiny_cnn"), (2, "tiny_cnn")]
    assert all(0.0 <= r["acc"] <= 1.0 for r in rows)
    state = json.loads((run_dir / "state.json").read_text())
    assert {"g0/classifier/tiny_cnn", "g2/push", "g2/classifier/tiny_cnn"} <= set(state["completed"])
    assert (run_dir / "config.yaml").exists()
    assert any((run_dir / "stack").iterdir()), "the synthetic stack folder is empty"
    assert log.count("[genbias] done: 3 result rows") == 1


def test_requeued_job_resumes_and_matches_an_uninterrupted_run(uninterrupted, tmp_path):
    reference_dir, _ = uninterrupted
    log, run_dir = tmp_path / "job.log", tmp_path / "run"
    job_id = None
    try:
        job_id = _job_id(_sbatch(log, *_fit_args(run_dir), timeout=30))

        def in_generation_1_or_ended() -> str | None:
            if "generation 1/2" in _read(log):
                return "running"
            return "ended" if _job_fields(job_id).get("JobState") in FINISHED_STATES else None

        if _wait_for(in_generation_1_or_ended, "generation 1 to start", job_id, log) == "ended":
            raise AssertionError(f"job {job_id} ended before generation 1; log:\n{_read(log)[-3000:]}")
        # what `--signal=B:USR1@90` delivers 90 s before the time limit: the batch shell requeues the job
        subprocess.run(["scancel", "--batch", "--signal=USR1", job_id], check=True, timeout=20)

        fields = _wait_for(_finished_releasing_requeued(job_id), "the requeued job to finish", job_id, log)
    finally:
        if job_id and _job_fields(job_id).get("JobState") not in FINISHED_STATES:
            _cancel(job_id)
    text = _read(log)
    assert fields["JobState"] == "COMPLETED", f"job ended {fields['JobState']}; log:\n{text[-3000:]}"
    assert int(fields["Restarts"]) == 1
    assert f"requeueing job {job_id}" in text
    assert "(restart 0)" in text and "(restart 1)" in text  # one log, appended by both attempts
    assert text.count("[genbias] done: 3 result rows") == 1  # the first attempt was stopped before the end
    assert "[genbias] resuming" in text

    rows, reference = _results(run_dir), _results(reference_dir)
    assert [(r["generation"], r["classifier"]) for r in rows] == [(r["generation"], r["classifier"]) for r in reference]
    for row, ref in zip(rows, reference):
        for key in (*METRIC_KEYS, "acc_rank", "group_acc"):
            assert _same_values(row[key], ref[key]), (row["generation"], key, row[key], ref[key])
        assert row["stack_generations"] == ref["stack_generations"]
    state = json.loads((run_dir / "state.json").read_text())
    reference_state = json.loads((reference_dir / "state.json").read_text())
    assert len(state["completed"]) == len(set(state["completed"]))  # no stage recorded twice
    assert state["completed"] == reference_state["completed"]
    assert len(state["results"]) == 3


def test_preempted_sweep_array_task_is_requeued_and_finishes(tmp_path):
    """scripts/slurm/sweep.sbatch: USR1 to the batch shell (what `--signal=B:USR1@90` or a preemption delivers) in
    generation 1 requeues the array task, which resumes its run and finishes it with no stage recorded twice.
    Five generations, so that the run is far from done when the requeue stops it (seconds after the signal)."""
    out, log = tmp_path / "out", tmp_path / "job.log"
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(json.dumps({"configs": [CONFIG], "seeds": [0], "out": str(out),
                                      "overrides": [{"trainer.accelerator": "cpu", "loop.generations": 5}]}))
    cmd = ["sbatch", "--parsable", "--array=0-0", "--gres=none", "--cpus-per-task=1", f"--output={log}",
           "--job-name=genbias-sweep-test", f"--export=ALL,SWEEP={sweep_file}", "scripts/slurm/sweep.sbatch"]
    job_id = None
    try:
        submitted = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30)
        job_id = f"{_job_id(submitted)}_0"

        def in_generation_1_or_ended() -> str | None:
            if "generation 1/5" in _read(log):
                return "running"
            return "ended" if _job_fields(job_id).get("JobState") in FINISHED_STATES else None

        if _wait_for(in_generation_1_or_ended, "generation 1 to start", job_id, log) == "ended":
            raise AssertionError(f"array task {job_id} ended before generation 1; log:\n{_read(log)[-3000:]}")
        subprocess.run(["scancel", "--batch", "--signal=USR1", job_id], check=True, timeout=20)

        fields = _wait_for(_finished_releasing_requeued(job_id), "the requeued array task to finish", job_id, log)
    finally:
        if job_id and _job_fields(job_id).get("JobState") not in FINISHED_STATES:
            _cancel(job_id)
    text = _read(log)
    assert fields["JobState"] == "COMPLETED", f"array task ended {fields['JobState']}; log:\n{text[-3000:]}"
    assert int(fields["Restarts"]) == 1 and f"requeueing array task {job_id}" in text
    assert "(restart 0)" in text and "(restart 1)" in text and "[genbias] resuming" in text
    run_dir = out / "tiny_mnist__accelerator-cpu_generations-5" / "seed_0"
    assert [(r["generation"], r["classifier"]) for r in _results(run_dir)] == [(g, "tiny_cnn") for g in range(6)]
    completed = json.loads((run_dir / "state.json").read_text())["completed"]
    assert len(completed) == len(set(completed)) == 2 + 5 * 5
