"""RunRecord.open: a finished run's one reader; whether it is finished and what its classifiers are called are
answered here once, for the report and the sweep alike."""

from __future__ import annotations

import json

import pytest
import yaml

from common.errors import ConfigError
from records.run_record import RunRecord, is_finished
from tests.fakes.run_dirs import make_row, make_run


def test_a_run_reads_with_its_rows_blocks_card_and_seed(tmp_path):
    record = RunRecord.open(make_run(tmp_path / "run", 1))
    assert record.seed == 1 and record.generations == [0, 1, 2] and len(record.rows) == 6
    assert record.blocks[2]["fid"] == 121.0 and record.facts.subgroup_noun == "colour"
    assert record.planned_classifiers == ["lenet", "vgg19"] and record.finished
    assert record.progress == "3/3 generations (0-2) done"


def test_older_rows_are_migrated_when_read(tmp_path):
    """A row written before the cells reading gets it from its group_acc (one class: cells = per class = pooled)."""
    record = RunRecord.open(make_run(tmp_path / "run", 0))
    row = record.rows[0]
    assert "meo_cells" not in make_row(0, 0, "lenet", "colored_mnist")
    assert row["md_cells"] == pytest.approx(0.9 - 0.5) and row["meo_eq2"] == pytest.approx(2 * row["meo"] - 1)


def test_a_classifier_is_named_by_its_name_else_its_arch(tmp_path):
    def named(config: dict) -> None:
        config["classifiers"] = [{"arch": "lenet", "name": "small"}, {"arch": "vgg19", "name": None}]

    rows = [make_row(0, g, c, "colored_mnist") | {"classifier": n} for g in (0, 1, 2)
            for c, n in (("lenet", "small"), ("vgg19", "vgg19"))]
    record = RunRecord.open(make_run(tmp_path / "run", 0, rows=rows, config_edit=named))
    assert record.planned_classifiers == ["small", "vgg19"] and record.finished


def test_a_run_missing_a_planned_generation_or_classifier_is_unfinished(tmp_path):
    rows = [make_row(0, g, c, "colored_mnist") for g in (0, 1, 2) for c in ("lenet", "vgg19")]
    short = make_run(tmp_path / "short", 0, rows=rows[:4])  # generation 2 missing
    lacking = make_run(tmp_path / "lacking", 0, rows=rows[:-1])  # generation 2's vgg19 missing
    for path, progress in ((short, "2/3"), (lacking, "2/3")):
        record = RunRecord.open(path)
        assert not record.finished and record.progress.startswith(progress) and not is_finished(path)
    assert is_finished(make_run(tmp_path / "done", 0, rows=rows))


def test_a_folder_that_is_not_a_run_is_one_error_that_says_what_to_pass(tmp_path):
    make_run(tmp_path / "sweep" / "a" / "seed_0", 0)
    with pytest.raises(ConfigError, match=r"has no results.jsonl \(it holds 1 run directories below it: pass them "
                                          r"instead, e.g. '.*sweep/\*/\*'\)"):
        RunRecord.open(tmp_path / "sweep")
    with pytest.raises(ConfigError, match="the folder does not exist"):
        RunRecord.open(tmp_path / "nothing")
    assert not is_finished(tmp_path / "sweep") and not is_finished(tmp_path / "nothing")


def test_rows_of_two_seeds_in_one_folder_are_refused(tmp_path):
    rows = [make_row(0, 0, "lenet", "colored_mnist"), make_row(1, 1, "lenet", "colored_mnist")]
    path = make_run(tmp_path / "run", 0, rows=rows)
    with pytest.raises(ConfigError, match=r"mixes seeds \[0, 1\]"):
        RunRecord.open(path)


def test_a_run_without_a_state_reads_its_rows_and_config_only(tmp_path):
    path = make_run(tmp_path / "run", 0)
    (path / "state.json").unlink()
    record = RunRecord.open(path)
    assert record.blocks == {} and record.facts is None and record.environments == [] and record.finished
    assert yaml.safe_load((path / "config.yaml").read_text()) == record.config
    assert [json.loads(line)["generation"] for line in (path / "results.jsonl").read_text().splitlines()] == \
        [row["generation"] for row in record.rows]
