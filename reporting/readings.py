"""The three fairness readings in the report: which one a dataset leads with, and in what order the readings are
shown (rows written before a reading existed are completed when read: ``records.results.ROW_MIGRATIONS``)."""

from __future__ import annotations

from datamodules.facts import DatasetFacts
from records.results import READING_TITLES, READINGS

#: why each dataset leads with its reading (one sentence for the summary)
READING_REASONS = {
    "pooled": "the subgroup index means the same thing in every class (a stroke colour), so pooling it over classes "
              "is meaningful",
    "cells": "\"subgroup i\" is a different {what} in every class, so the cited CIFAR-20/100 code's convention is "
             "followed: every (class, subgroup) cell is a group",
}


def leading_reading(facts: DatasetFacts | None) -> str:
    """The reading the dataset's card leads with; "pooled" for a run that recorded no card (written before runs
    recorded it)."""
    return facts.fairness_reading if facts is not None else "pooled"


def reading_order(facts: DatasetFacts | None) -> list[str]:
    """The three readings, the dataset's leading one first, the others in their usual order."""
    lead = leading_reading(facts)
    return [lead, *(r for r in READINGS if r != lead)]


def reading_title(reading: str) -> str:
    return READING_TITLES[reading]
