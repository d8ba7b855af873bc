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


def _git(repo, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True)


def test_an_untracked_file_in_a_product_folder_makes_the_tree_dirty(tmp_path, monkeypatch):
    """A new plug-in not yet committed changes what a run computes; a note beside the code does not."""
    import common.environment as environment

    (tmp_path / "filters").mkdir()
    (tmp_path / "filters" / "base.py").write_text("x = 1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "first")
    monkeypatch.setattr(environment, "REPO_ROOT", tmp_path)

    def dirty() -> bool:
        environment._static_environment.cache_clear()
        return environment._static_environment()["git_dirty"]

    try:
        assert dirty() is False
        (tmp_path / "notes.txt").write_text("not product code\n")
        assert dirty() is False
        (tmp_path / "filters" / "my_filter.py").write_text("class MyFilter: ...\n")
        assert dirty() is True
        (tmp_path / "filters" / "my_filter.py").unlink()
        (tmp_path / "filters" / "base.py").write_text("x = 2\n")  # a tracked change anywhere, as before
        assert dirty() is True
    finally:
        environment._static_environment.cache_clear()


def test_a_loaded_weight_file_is_recorded_with_its_sha256(tmp_path):
    """What build_network loads as ImageNet weights (here a resnet18 state dict of our own) is in the next record."""
    import hashlib

    import torchvision

    from common.environment import loaded_weight_files
    from lightning_modules.networks.registry import build_network

    weights = tmp_path / "resnet18.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    build_network("resnet18", num_classes=3, in_chans=3, pretrained=True, weights_path=str(weights))
    expected = hashlib.sha256(weights.read_bytes()).hexdigest()
    record = next(r for r in collect_environment()["weight_files"] if r["path"] == str(weights.resolve()))
    assert record == {"what": "ImageNet weights of resnet18", "path": str(weights.resolve()),
                      "bytes": weights.stat().st_size, "sha256": expected}
    assert record in loaded_weight_files()


def test_a_weight_file_is_hashed_once_however_many_stages_record_it(tmp_path):
    from common.environment import file_sha256, loaded_weight_files, note_weight_file, start_launch

    start_launch()  # only this test's file (an earlier test's may be gone from disk: never hashed, never a miss)
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"\x00" * 1024)
    note_weight_file(weights, "a test file")
    loaded_weight_files()
    misses = file_sha256.cache_info().misses
    for _ in range(3):
        note_weight_file(weights, "a test file")  # loaded again by a later stage
        loaded_weight_files()
    assert file_sha256.cache_info().misses == misses
    weights.write_bytes(b"\x01" * 2048)  # replaced on disk: hashed again
    note_weight_file(weights, "a test file")
    record = next(r for r in loaded_weight_files() if r["path"] == str(weights.resolve()))
    assert file_sha256.cache_info().misses == misses + 1 and record["bytes"] == 2048


def test_a_new_launch_in_the_same_process_starts_with_no_weight_files_and_no_command(tmp_path):
    """cli.main can run several times in one process (the tests' in-process runs): each launch's records name the
    files it loaded, not those of a launch before it."""
    import cli
    from common.environment import command_line, loaded_weight_files, note_command_line, note_weight_file

    weights = tmp_path / "w.bin"
    weights.write_bytes(b"\x00" * 16)
    note_weight_file(weights, "an earlier launch's file")
    note_command_line(["cli.py", "fit", "--earlier"])
    assert cli.main(["fit", "--config", "does-not-exist.yaml"]) == 2  # a launch that stops at its config
    assert str(weights.resolve()) not in {r["path"] for r in loaded_weight_files()}
    assert "--earlier" not in command_line()


def test_url_credentials_are_masked_in_the_recorded_command_line():
    """state.json and summary.md are readable by everyone: a tracking URI's password is not written there."""
    from common.environment import command_line, mask_url_credentials, note_command_line, start_launch

    assert mask_url_credentials("https://alice:s3cr3t@mlflow.lab:5000/x") == "https://***@mlflow.lab:5000/x"
    assert mask_url_credentials("postgresql+psycopg2://u:p@db/mlflow") == "postgresql+psycopg2://***@db/mlflow"
    assert mask_url_credentials("http://host:5000/a@b sqlite:///x.db") == "http://host:5000/a@b sqlite:///x.db"
    note_command_line(["cli.py", "fit", "--loop.loggers",
                       "[{kind: mlflow, tracking_uri: 'https://alice:s3cr3t@mlflow.lab:5000'}]"])
    try:
        recorded = command_line()
    finally:
        start_launch()
    assert "s3cr3t" not in recorded and "alice" not in recorded
    assert "https://***@mlflow.lab:5000" in recorded


def test_a_weight_file_removed_after_it_was_loaded_is_recorded_without_a_hash(tmp_path):
    """A temporary copy deleted before the stage's record is made (a test's fake model, a scratch folder) leaves its
    path and size in the record and no SHA-256, instead of failing the stage."""
    from common.environment import loaded_weight_files, note_weight_file, start_launch

    start_launch()
    kept, removed = tmp_path / "kept.bin", tmp_path / "removed.bin"
    kept.write_bytes(b"weights")
    removed.write_bytes(b"scratch")
    note_weight_file(kept, "kept")
    note_weight_file(removed, "removed")
    removed.unlink()
    records = {r["what"]: r for r in loaded_weight_files()}
    assert records["removed"] == {"what": "removed", "path": str(removed.resolve()), "bytes": 7, "sha256": None}
    assert records["kept"]["sha256"] == "9a129038d9a00aed0cf6a7ea059ca50a813449061ab87848cf1a13eafdf33b2c"
    start_launch()
