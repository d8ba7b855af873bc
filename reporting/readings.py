"""The three fairness readings in the report: which one a dataset leads with, in what order the readings are shown,
and the readings of result rows written before the cells reading and the printed eqs. 2-3 existed.

A row keeps ``group_acc`` (the (class, subgroup) accuracies), from which the per_class and cells readings follow
exactly; the pooled TPRs need the counts, so of the pooled printed forms only MEO_eq2 (= 2 MEO - 1) can be added.
"""

from __future__ import annotations

import math

import torch

from datamodules.facts import DatasetFacts
from metrics.fairness import reading_metrics
from records.results import READING_METRICS, READING_TITLES

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
    return [lead, *(r for r in READING_METRICS if r != lead)]


def reading_title(reading: str) -> str:
    return READING_TITLES[reading]


def _finite(value: torch.Tensor) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def complete_row(row: dict) -> dict:
    """The row with every reading's metrics: the keys an older row lacks are computed from its ``group_acc``
    (keys it has are kept as written). Rows without subgroups (Hard ImageNet) are returned unchanged."""
    group_acc = row.get("group_acc") or []
    if not group_acc or not group_acc[0]:
        return row
    wanted = [k for reading in ("per_class", "cells") for k in READING_METRICS[reading]]
    completed = dict(row)
    if any(k not in row for k in wanted):
        try:
            rates = torch.tensor([[math.nan if v is None else float(v) for v in r] for r in group_acc])
        except (TypeError, ValueError):  # not a (classes x subgroups) table of numbers: nothing to recompute
            return row
        for key, value in reading_metrics(rates).items():
            completed.setdefault(key, _finite(value))
    if "meo_eq2" not in row and row.get("meo") is not None:
        completed["meo_eq2"] = 2.0 * float(row["meo"]) - 1.0  # ordered pairs count every gap twice
    return completed
