"""The run directory: its layout, the modes a launch can find it in, and an atomic state that rebuilds results."""

import json

import pytest

from common.errors import ConfigError
from simulation.run_directory import RunDirectory, config_fingerprint


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


def test_resume_checkpoint_is_the_newest_of_last_and_requeue_checkpoints(tmp_path):
    import os

    stage = tmp_path / "stage"
    assert RunDirectory.resume_checkpoint(stage) is None
    (stage / "checkpoints").mkdir(parents=True)
    last, requeue = stage / "checkpoints" / "last.ckpt", stage / "hpc_ckpt_1.ckpt"
    last.write_bytes(b"a")
    requeue.write_bytes(b"b")
    os.utime(last, (1, 1))
    assert RunDirectory.resume_checkpoint(stage) == str(requeue)
    os.utime(requeue, (0, 0))
    assert RunDirectory.resume_checkpoint(stage) == str(last)


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
    run.mark_done("g0/evaluate/lenet", {"generation": 0, "classifier": "lenet", "acc": 0.9})
    run.mark_done("g1/generate", blocks=run.with_block_report(1, fid=12.5))
    run.mark_done("g1/push", blocks=run.with_block_report(1, filter_kept=90))
    assert run.is_done("g1/generate") and not run.is_done("g1/classifier/lenet")
    assert run.block_report(1) == {"fid": 12.5, "filter_kept": 90} and run.block_report(2) == {}
    assert run.stage_info("g0/classifier/lenet") == {"epochs": 3}
    assert run.results_path.read_text() == json.dumps({"generation": 0, "classifier": "lenet", "acc": 0.9}) + "\n"
    resumed = RunDirectory(tmp_path / "run")
    resumed.create("config A", "resume", "launch-2")
    assert resumed.state["completed"] == run.state["completed"] and resumed.state["launch_id"] == "launch-2"
    assert resumed.results == run.results
