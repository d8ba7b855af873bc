"""A card recorded by an earlier release still reads: the fields it had that nothing read are dropped."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from datamodules.facts import RETIRED_FIELDS, DatasetFacts

STORED_STATE = Path(__file__).resolve().parents[1] / "stored_runs" / "old_run_v1" / "state.json"


def test_an_old_card_with_subgroup_members_reads_without_them():
    recorded = json.loads(STORED_STATE.read_text())["dataset"]
    assert "subgroup_members" in recorded  # the stored run predates the field's removal
    facts = DatasetFacts.from_json(recorded)
    assert facts.name == recorded["name"] and facts.class_names == tuple(recorded["class_names"])
    per_class = dict(recorded, subgroup_members=[["a", "b"]] * len(recorded["class_names"]))  # as CIFAR-20 wrote it
    assert DatasetFacts.from_json(per_class) == facts


def test_retired_fields_are_not_card_fields():
    assert set(RETIRED_FIELDS).isdisjoint(f.name for f in fields(DatasetFacts))
