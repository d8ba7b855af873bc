"""common/environment.py: what a stage records about where and with what it ran."""

from __future__ import annotations

import json
import platform
import subprocess

import torch

from common.environment import LIBRARIES, REPO_ROOT, collect_environment, version_changes


def test_the_record_holds_versions_layout_host_and_commit(monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "41")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    monkeypatch.setenv("SLURM_NNODES", "2")
    env = collect_environment()
    assert json.loads(json.dumps(env)) == env  # plain JSON for state.json
    assert env["python"] == platform.python_version()
    assert env["torch"] == torch.__version__ and set(LIBRARIES.values()) <= env.keys()
    assert env["lightning"] and env["open_clip"]
    assert (env["slurm_job_id"], env["nodes"], env["world_size"]) == ("41_7", 2, 1)
    assert env["omp_threads"] == torch.get_num_threads()
    commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if commit.returncode == 0:
        assert env["git_commit"] == commit.stdout.strip() and isinstance(env["git_dirty"], bool)
    if not torch.cuda.is_available():  # this CI: no CUDA stack to record
        assert (env["cuda"], env["cudnn"], env["driver"], env["gpu_names"], env["gpu_count"]) == (None,) * 5


def test_version_changes_name_only_what_changes_the_numbers():
    before = {"torch": "2.5.1", "cuda": "12.1", "hostname": "a", "python": "3.11.4"}
    after = {"torch": "2.6.0", "cuda": "12.1", "hostname": "b", "python": "3.11.4"}
    assert version_changes(before, after) == ["torch 2.5.1 -> 2.6.0"]
    assert version_changes(after, after) == []
