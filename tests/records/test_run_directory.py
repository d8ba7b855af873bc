"""The run directory: its layout, the modes a launch can find it in, and an atomic state that rebuilds results."""

import json

import pytest

from common.errors import ConfigError
from records.run_directory import RunDirectory, config_fingerprint
from records.state import StageKey


def test_layout_is_named_in_one_place(tmp_path):
    run = RunDirectory(tmp_path)
    assert run.generator_dir(3) == tmp_path / "gen_03" / "generator"
    assert run.shard_dir(1) == tmp_path / "gen_01" / "shards"
    assert run.block_scores_path(2) == tmp_path / "gen_02" / "block_scores.safetensors"
    assert run.classifier_dir(0, "lenet") == tmp_path / "gen_00" / "classifiers" / "lenet"
    checkpoints = run.classifier_dir(0, "lenet") / "checkpoints"
    assert run.classifier_checkpoint(0, "lenet") == checkpoints / "last.ckpt"  # no validation: the last one
    checkpoints.mkdir(parents=True)
    (checkpoints / "best.ckpt").write_bytes(b"x")
    assert run.classifier_checkpoint(0, "lenet") == checkpoints / "best.ckpt"
    for generation in (2, 1):
        run.samples_sheet(generation).parent.mkdir(parents=True, exist_ok=True)
        run.samples_sheet(generation).write_bytes(b"png")
    assert run.sample_sheets() == [(1, run.samples_sheet(1)), (2, run.samples_sheet(2))]


def test_resume_checkpoint_is_the_newest_readable_of_last_and_requeue_checkpoints(tmp_path):
    import os

    import torch

    stage = tmp_path / "stage"
    assert RunDirectory.resume_checkpoint(stage) is None
    (stage / "checkpoints").mkdir(parents=True)
    last, requeue = stage / "checkpoints" / "last.ckpt", stage / "hpc_ckpt_1.ckpt"
    torch.save({"epoch": 1}, last)
    torch.save({"epoch": 2}, requeue)
    os.utime(last, (1, 1))
    assert RunDirectory.resume_checkpoint(stage) == str(requeue)
    os.utime(requeue, (0, 0))
    assert RunDirectory.resume_checkpoint(stage) == str(last)
    # a truncated newest checkpoint (a full disk, a copy cut short) is set aside; the previous good one is used
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    assert RunDirectory.resume_checkpoint(stage) == str(requeue)
    assert not last.exists() and (stage / "checkpoints" / "last.ckpt.corrupt").read_bytes() == data[: len(data) // 2]


def test_modes_new_resume_overwrite_and_refusals(tmp_path):
    run = RunDirectory(tmp_path / "run")
    assert run.check_compatible("config A", overwrite=False) == "new"
    run.create("config A", "new", "launch-1")
    assert run.check_compatible("config A", overwrite=False) == "resume"
    assert run.check_compatible("config A", overwrite=True) == "overwrite"
    with pytest.raises(ConfigError, match="holds a run with a different config"):
        run.check_compatible("config B", overwrite=False)
    state = json.loads(run.state_path.read_text())
    run.state_path.write_text(json.dumps({**state, "version": 1}))
    with pytest.raises(ConfigError, match="another version of this tool"):
        run.check_compatible("config A", overwrite=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a run of this tool"):
        RunDirectory(tmp_path / "other").check_compatible("config A", overwrite=False)


def test_state_records_stages_rows_and_block_reports_and_rebuilds_results(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.create("config A", "new", "launch-1")
    assert json.loads(run.state_path.read_text())["config_fingerprint"] == config_fingerprint("config A")
    run.mark_done("g0/classifier/lenet", stage_info=run.with_stage_info("g0/classifier/lenet", epochs=3))
    run.mark_done("g0/evaluate/lenet", [{"generation": 0, "classifier": "lenet", "acc": 0.9}])
    run.mark_done("g1/generate", blocks=run.with_block_report(1, fid=12.5))
    run.mark_done("g1/push", blocks=run.with_block_report(1, filter_kept=90))
    assert run.is_done("g1/generate") and not run.is_done("g1/classifier/lenet")
    assert run.block_report(1) == {"fid": 12.5, "filter_kept": 90} and run.block_report(2) == {}
    assert run.stage_info("g0/classifier/lenet") == {"epochs": 3}
    assert run.results_path.read_text() == json.dumps({"generation": 0, "classifier": "lenet", "acc": 0.9}) + "\n"
    resumed = RunDirectory(tmp_path / "run")
    resumed.create("config A", "resume", "launch-2")
    assert resumed.state.completed == run.state.completed and resumed.state.launch_id == "launch-2"
    assert resumed.results == run.results


def block(generation: int, count: int = 5, sha: str = "a") -> dict:
    return {"generation": generation, "count": count, "shape": [1, 2, 2],
            "files": {"images": {"name": f"gen_{generation}_images.npy", "sha256": sha * 64},
                      "labels": {"name": f"gen_{generation}_labels.npy", "sha256": "b" * 64}}}


def test_the_stack_on_disk_is_compared_with_the_stack_the_state_records(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.create("config", "new", "launch")
    run.mark_done("g2/push", stack={"blocks": [block(1), block(2)]})
    assert run.stack_differences({"blocks": [block(1), block(2)]}) == []
    assert run.stack_differences({"blocks": []}) == ["generation 1's block is missing",
                                                     "generation 2's block is missing"]
    assert run.stack_differences({"blocks": [block(1), block(2, sha="c")]}) == [
        "generation 2's block differs from the one recorded (size or checksum)"]
    assert run.stack_differences({"blocks": [block(1), block(2, count=4)]}) != []
    # a push killed after writing the stack but before the state recorded it: its block (which may have evicted the
    # oldest recorded one) is no difference, the push stage records it on resume
    assert run.stack_differences({"blocks": [block(2), block(3)]}) == []
    run.mark_done("g3/push")
    assert run.stack_differences({"blocks": [block(2), block(3)]}) == [
        "generation 1's block is missing", "generation 3's block is not in the run state"]


def worker_record(tmp_path, run: RunDirectory, *, train_done=True, evaluate_done=True, fingerprint=None):
    """What a classifier worker leaves: a copy of the run's state with its stages recorded in its own file."""
    worker = RunDirectory(run.path)
    worker.load()
    worker.record_elsewhere(tmp_path / "worker_record.json")
    if fingerprint is not None:
        worker.state.config_fingerprint = fingerprint
    if train_done:
        worker.note_environment(StageKey.train_classifier(1, "b"), {"host": "worker-host"})
        worker.mark_done(StageKey.train_classifier(1, "b"),
                         stage_info=worker.with_stage_info(StageKey.train_classifier(1, "b"), epochs=3, wall_s=1.5))
    if evaluate_done:
        worker.mark_done(StageKey.evaluate(1, "b"), [{"generation": 1, "classifier": "b", "acc": 0.75}])
    return tmp_path / "worker_record.json"


def started_run(tmp_path) -> RunDirectory:
    run = RunDirectory(tmp_path / "run")
    run.create("seed_everything: 0\n", "new", "launch-1")
    run.mark_done(StageKey.evaluate(0, "a"), [{"generation": 0, "classifier": "a", "acc": 0.5}])
    return run


def test_a_worker_records_in_its_own_file_and_never_in_the_run_state(tmp_path):
    run = started_run(tmp_path)
    state_before = run.state_path.read_bytes(), run.results_path.read_bytes()
    record = worker_record(tmp_path, run)
    assert (run.state_path.read_bytes(), run.results_path.read_bytes()) == state_before
    assert json.loads(record.read_text())["completed"][-2:] == ["g1/classifier/b", "g1/evaluate/b"]


def test_a_worker_record_is_adopted_with_its_rows_stage_info_and_environment_then_removed(tmp_path):
    run = started_run(tmp_path)
    record = worker_record(tmp_path, run)
    adopted = run.adopt_worker_record(record, 1, "b")
    assert [str(k) for k in adopted] == ["g1/classifier/b", "g1/evaluate/b"]
    assert not record.exists()
    again = RunDirectory(run.path)
    again.load()  # on disk, as a relaunch reads it
    assert again.state.completed[-2:] == ["g1/classifier/b", "g1/evaluate/b"]
    assert [r["acc"] for r in again.results] == [0.5, 0.75]  # the run's rows, then the worker's one row
    assert again.stage_info(StageKey.train_classifier(1, "b")) == {"epochs": 3, "wall_s": 1.5}
    index = again.state.stage_environment["g1/classifier/b"]
    assert again.state.environments[index] == {"host": "worker-host"}
    assert [json.loads(line)["acc"] for line in again.results_path.read_text().splitlines()] == [0.5, 0.75]


def test_a_half_done_worker_record_adopts_what_finished_and_a_stale_one_nothing(tmp_path):
    run = started_run(tmp_path)
    record = worker_record(tmp_path, run, evaluate_done=False)  # killed while evaluating
    assert [str(k) for k in run.adopt_worker_record(record, 1, "b")] == ["g1/classifier/b"]
    assert not run.is_done(StageKey.evaluate(1, "b")) and len(run.results) == 1
    other = worker_record(tmp_path, started_run(tmp_path / "other"), fingerprint="another-run")
    assert run.adopt_worker_record(other, 1, "b") == [] and not other.exists()  # another run's: dropped
    assert run.adopt_worker_record(tmp_path / "missing.json", 1, "b") == []
    (tmp_path / "half.json").write_text('{"completed": ["g1/cl')  # cut short while written
    assert run.adopt_worker_record(tmp_path / "half.json", 1, "b") == []
