"""state.json: one spelling of a stage key, a file that reads back as it was written, a migration path for older
files, and one clear error for a file that is not a run state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.errors import ConfigError
from records import state as state_module
from records.results import migrate_row
from records.run_directory import RunDirectory
from records.state import STATE_VERSION, RunState, StageKey, StateError, read_state, write_state

STORED_RUN = Path(__file__).resolve().parents[1] / "stored_runs" / "old_run_v1"


@pytest.mark.parametrize("key, text", [
    (StageKey.push(1), "g1/push"), (StageKey.generator(3), "g3/generator"), (StageKey.generate(12), "g12/generate"),
    (StageKey.train_classifier(2, "lenet"), "g2/classifier/lenet"), (StageKey.evaluate(0, "tiny_cnn"),
                                                                      "g0/evaluate/tiny_cnn"),
    (StageKey.oracle(), "g0/oracle"), (StageKey.whole_run(), "sandbox")])
def test_a_stage_key_has_one_spelling_that_parses_back(key, text):
    assert str(key) == text and StageKey.parse(text) == key


@pytest.mark.parametrize("text", ["g1/pushed", "1/push", "g1/classifier", "g1/push/lenet", "g/push", ""])
def test_a_misspelt_stage_key_is_refused(text):
    with pytest.raises(ValueError):
        StageKey.parse(text)


def test_marking_a_misspelt_stage_done_is_an_error_not_a_stage_that_never_completes(tmp_path):
    run = RunDirectory(tmp_path)
    run.create("config", "new", "launch")
    with pytest.raises(ValueError, match="g1/pushed"):
        run.mark_done("g1/pushed")
    assert run.state.completed == []


def test_the_stored_run_reads_and_writes_back_the_same_json(tmp_path):
    """A state written by the code before records/ existed round-trips exactly (every key kept, none added)."""
    raw = json.loads((STORED_RUN / "state.json").read_text())
    state = read_state(STORED_RUN / "state.json")
    assert state.version == STATE_VERSION == raw["version"]
    assert state.is_done(StageKey.evaluate(1, "tiny_cnn")) and not state.is_done(StageKey.evaluate(2, "tiny_cnn"))
    assert state.block_report(1)["fid"] == raw["blocks"]["1"]["fid"]
    write_state(tmp_path / "state.json", state)
    assert json.loads((tmp_path / "state.json").read_text()) == raw


def test_the_stored_run_is_resumed_not_refused(tmp_path):
    """A finished run of today's code resumes (a relaunch with its config finds everything done)."""
    for name in ("state.json", "results.jsonl", "config.yaml"):
        (tmp_path / name).write_bytes((STORED_RUN / name).read_bytes())
    run = RunDirectory(tmp_path)
    assert run.check_compatible((tmp_path / "config.yaml").read_text(), overwrite=False) == "resume"
    run.load()
    stored = [json.loads(line) for line in (STORED_RUN / "results.jsonl").read_text().splitlines()]
    assert run.results == [migrate_row(row) for row in stored]  # in today's fields (the realised share renamed)
    assert [row["realised_synthetic_share"] for row in run.results] == [row["synthetic_share"] for row in stored]
    assert run.stack_differences({"blocks": run.state.stack_blocks}) == []


def test_an_older_state_is_migrated_step_by_step_when_read(tmp_path, monkeypatch):
    """The migration path: a version-k file passes through every step from k to this version, in order."""
    monkeypatch.setattr(state_module, "STATE_VERSION", 4)
    steps = []

    def rename_completed(raw: dict) -> dict:
        steps.append(2)
        return {**raw, "completed": raw.pop("done")}

    def add_launch(raw: dict) -> dict:
        steps.append(3)
        return {**raw, "launch_id": "migrated"}

    monkeypatch.setattr(state_module, "STATE_MIGRATIONS", {2: rename_completed, 3: add_launch})
    (tmp_path / "state.json").write_text(json.dumps({"version": 2, "done": ["g0/evaluate/lenet"], "results": []}))
    state = read_state(tmp_path / "state.json")
    assert steps == [2, 3] and state.version == 4 and state.launch_id == "migrated"
    assert state.is_done(StageKey.evaluate(0, "lenet"))


@pytest.mark.parametrize("content, message", [
    ('{"completed": ["g0/cl', "state.json is not valid JSON, so the run state cannot be read"),
    ("[1, 2, 3]", "state.json is not a run state of this tool"),
    ('{"blocks": {"one": {}}}', "state.json has a malformed 'blocks' entry"),
    ('{"completed": "g0/oracle"}', "state.json has a malformed 'completed' entry (a str, not a list)"),
])
def test_a_file_that_is_not_a_state_is_one_error_naming_it(tmp_path, content, message):
    (tmp_path / "state.json").write_text(content)
    with pytest.raises(StateError) as error:
        read_state(tmp_path / "state.json")
    assert message in str(error.value) and str(tmp_path / "state.json") in str(error.value)


def test_a_state_of_another_version_is_not_resumed_but_may_be_overwritten(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps({"version": STATE_VERSION + 1, "completed": [], "results": []}))
    run = RunDirectory(tmp_path)
    with pytest.raises(ConfigError, match=f"another version of this tool \\(state version {STATE_VERSION + 1}"):
        run.check_compatible("config", overwrite=False)
    assert run.check_compatible("config", overwrite=True) == "overwrite"


def test_parts_nothing_recorded_are_left_out_of_the_file(tmp_path):
    write_state(tmp_path / "state.json", RunState(config_fingerprint="f"))
    assert json.loads((tmp_path / "state.json").read_text()) == {"version": STATE_VERSION, "config_fingerprint": "f",
                                                                 "completed": [], "results": []}
