"""The result row: one per (generation, classifier, seed), the single list of fields that the loop writes, the
TensorBoard summary plots and the report aggregates; and how a row written by an older version is brought up to
today's fields (``ROW_MIGRATIONS``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from metrics.fairness import reading_metrics

# ------------------------------------------------------------------------------------------------ the metric table
#: the three readings of "the groups", in the order the report shows them by default, and their key suffixes
READINGS = ("pooled", "per_class", "cells")
READING_SUFFIXES = {"pooled": "", "per_class": "_class", "cells": "_cells"}
#: how each reading is named in titles
READING_TITLES = {"pooled": "pooled: subgroup index pooled over classes",
                  "per_class": "per class: within each class, averaged over classes",
                  "cells": "cells: every (class, subgroup) cell a group"}
#: the groups of the table: what a metric describes
ACCURACY, FAIRNESS, PRINTED, DATA, BLOCK = "accuracy", "fairness", "printed", "data", "block"
UNIT_RANGE = (0.0, 1.0)


@dataclass(frozen=True)
class Metric:
    """One scalar of a result row: where it belongs, how it is named and drawn, and how seeds are summarised.

    A metric is one entry of ``METRICS``: the TensorBoard summary, the report's tables, CSVs, figures and HParams all
    read this table, so a new metric is a row here plus its computation.
    """

    #: the row's key
    name: str
    #: ACCURACY, FAIRNESS (bounded, 1 = equal), PRINTED (eqs. 2-3 as printed), DATA (the epoch's composition) or
    #: BLOCK (the generation's generated block: the generator's, the same in every row of the generation)
    group: str
    #: in titles, tables and chart names
    label: str
    #: the figures' y axis (None: the label)
    axis_label: str | None = None
    #: the fairness reading (FAIRNESS and PRINTED): pooled, per_class or cells
    reading: str | None = None
    #: the measure the readings share (``meo`` for meo, meo_class, meo_cells): how pooled, per class and cells
    #: line up in the charts that put them side by side
    family: str | None = None
    #: the range the figures draw it on (None: the data's)
    y_range: tuple[float, float] | None = None
    #: how seeds are summarised: the mean (and std) over seeds; a metric named here is unbounded below, and a null
    #: value where this bounded metric of the same row is finite counts as -inf (x/0)
    minus_infinity_when_null_beside: str | None = None

    @property
    def y_label(self) -> str:
        return self.axis_label or self.label


def _fairness(family: str, label: str, axis_labels: dict[str, str]) -> tuple[Metric, ...]:
    names = {"pooled": "", "per_class": " (per class)", "cells": " (cells)"}
    return tuple(Metric(family + READING_SUFFIXES[r], FAIRNESS, label + names[r], axis_labels[r], r, family,
                        UNIT_RANGE) for r in READINGS)


def _printed(family: str, label: str, axis_label: str, y_range, bounded: str | None) -> tuple[Metric, ...]:
    names = {"pooled": "", "per_class": " (per class)", "cells": " (cells)"}
    return tuple(Metric(family + READING_SUFFIXES[r], PRINTED, label + names[r], axis_label if r == "pooled" else None,
                        r, family, y_range, bounded + READING_SUFFIXES[r] if bounded else None) for r in READINGS)


METRICS: tuple[Metric, ...] = (
    Metric("acc", ACCURACY, "accuracy", "accuracy", y_range=UNIT_RANGE),
    *_fairness("meo", "MEO", {"pooled": "MEO (1 = equal subgroup TPRs)", "per_class": "MEO per class (1 = equal)",
                              "cells": "MEO over cells (1 = equal)"}),
    *_fairness("di", "DI", {"pooled": "DI (1 = no disparity)", "per_class": "DI per class (1 = no disparity)",
                            "cells": "DI over cells (1 = no disparity)"}),
    *_fairness("md", "MD", {"pooled": "MD (max - min subgroup TPR)", "per_class": "MD per class (max - min)",
                            "cells": "MD over cells (max - min cell accuracy)"}),
    *_printed("meo_eq2", "MEO eq. 2 as printed", "MEO eq. 2 as printed (1 = equal)", (-1.0, 1.0), None),
    *_printed("di_eq3", "DI eq. 3 as printed", "DI eq. 3 as printed (unbounded below)", None, "di"),
    Metric("realised_synthetic_share", DATA, "realised synthetic share"),
    Metric("synthetic_reuse", DATA, "stack reuse"),
    Metric("fid", BLOCK, "FID"),
    Metric("fid_kept", BLOCK, "FID (kept)"),
    Metric("filter_kept", BLOCK, "filter_kept"),
    Metric("filter_dropped", BLOCK, "filter_dropped"),
    Metric("quality_q", BLOCK, "q_t"),
    Metric("quality_q_kept", BLOCK, "q_t (kept)"),
    Metric("imbalance_u", BLOCK, "u_t", y_range=UNIT_RANGE),
    Metric("imbalance_u_kept", BLOCK, "u_t (kept)"),
    Metric("majority_gain", BLOCK, "majority gain"),
    Metric("majority_gain_kept", BLOCK, "majority gain (kept)"),
)


def metric(name: str) -> Metric | None:
    """The table's entry for a row key (None for a key that is not a metric: ``acc_rank_1``, an ablation)."""
    return next((m for m in METRICS if m.name == name), None)


def metric_names(*groups: str, reading: str | None = None) -> tuple[str, ...]:
    """The metrics of ``groups`` (all without), of one ``reading`` when given, in the table's order."""
    return tuple(m.name for m in METRICS if (not groups or m.group in groups)
                 and (reading is None or m.reading == reading))


def label(name: str) -> str:
    entry = metric(name)
    return entry.label if entry is not None else name


def y_label(name: str) -> str:
    entry = metric(name)
    return entry.y_label if entry is not None else name


def reading_metrics_of(reading: str) -> tuple[str, ...]:
    """A reading's metrics as the report shows them: the bounded ones, then eqs. 2-3 as printed."""
    return metric_names(FAIRNESS, reading=reading) + metric_names(PRINTED, reading=reading)


def minus_infinity_when_null() -> dict[str, str]:
    """Unbounded metric -> the bounded one of the same row whose finite value makes its null a -inf (DI eq. 3)."""
    return {m.name: m.minus_infinity_when_null_beside for m in METRICS if m.minus_infinity_when_null_beside}


def fairness_families() -> list[tuple[str, ...]]:
    """Each bounded fairness measure in every reading, (pooled, per class, cells): ``("meo", "meo_class",
    "meo_cells")``, ... (the charts that put the readings side by side)."""
    families = dict.fromkeys(m.family for m in METRICS if m.group == FAIRNESS)
    return [tuple(next(m.name for m in METRICS if m.family == family and m.reading == reading)
                  for reading in READINGS) for family in families]


#: how the epoch's data were composed (fields of the row, not metrics of the table but its DATA entries)
DATA_FIELDS = ("target_share", "realised_synthetic_share", "synthetic_reuse", "n_real", "n_synthetic", "stack_size")


@dataclass
class ResultRow:
    """What one classifier of one generation measured on the real test set, and what it was trained on.

    Metrics are null where they do not apply: fairness metrics without known subgroups (Hard ImageNet), block
    statistics at generation 0, ablations without object masks. Fairness metrics come in three readings (no suffix
    = pooled, ``_class``, ``_cells``; ``metrics/fairness.py``).
    """

    generation: int
    classifier: str
    arch: str
    seed: int
    dataset: str
    # the epoch's composition: p (data.regime.synthetic_share) and the share the epoch had (below p while the stack
    # is smaller than the target)
    target_share: float
    realised_synthetic_share: float
    synthetic_reuse: float
    n_real: int
    n_synthetic: int
    stack_size: int
    stack_generations: list[int]
    # the real test set
    acc: float | None
    meo: float | None = None
    di: float | None = None
    md: float | None = None
    meo_class: float | None = None
    di_class: float | None = None
    md_class: float | None = None
    meo_cells: float | None = None
    di_cells: float | None = None
    md_cells: float | None = None
    # eqs. 2 and 3 as printed (DI_eq3 is null where a zero rate meets a positive one: x/0, unbounded)
    meo_eq2: float | None = None
    di_eq3: float | None = None
    meo_eq2_class: float | None = None
    di_eq3_class: float | None = None
    meo_eq2_cells: float | None = None
    di_eq3_cells: float | None = None
    acc_rank: list[float | None] = field(default_factory=list)
    group_acc: list[list[float | None]] = field(default_factory=list)
    # the generation's block
    fid: float | None = None
    fid_kept: float | None = None
    filter_kept: int | None = None
    filter_dropped: int | None = None
    quality_q: float | None = None
    quality_q_kept: float | None = None
    imbalance_u: float | None = None
    imbalance_u_kept: float | None = None
    majority_gain: float | None = None
    majority_gain_kept: float | None = None
    # Hard ImageNet ablations
    ablation_acc: dict[str, float | None] | None = None
    ablation_drop: dict[str, float | None] | None = None
    ablation_acc_class: dict[str, list[float | None]] | None = None
    # the training stage
    epochs: int = 0
    wall_s: float = 0.0
    # accuracy of uniform guessing (1 / classes), and whether acc is within metrics/chance.py's margin of it: the
    # fairness metrics of such a classifier read as fair because it has learned nothing
    chance_acc: float | None = None
    near_chance: bool = False

    def to_json(self) -> dict:
        return asdict(self)


#: what a line of results.jsonl must hold to be a result row of this tool
REQUIRED_ROW_KEYS = ("generation", "classifier", "dataset")


def classifier_name(name: str | None, arch: str) -> str:
    """A classifier's name in its rows, its folder and its stage keys: its ``name``, else its ``arch``."""
    return name or arch


# ------------------------------------------------------------------------------------------------ older rows
def _finite(value: torch.Tensor) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def add_missing_readings(row: dict) -> dict:
    """Rows written before the cells reading and the printed eqs. 2-3 existed: the keys a row lacks are computed
    from its ``group_acc`` (the (class, subgroup) accuracies, from which the per_class and cells readings follow
    exactly; keys it has are kept as written). The pooled TPRs need the counts, so of the pooled printed forms only
    MEO_eq2 (= 2 MEO - 1) is added. Rows without subgroups (Hard ImageNet) are returned unchanged."""
    group_acc = row.get("group_acc") or []
    if not group_acc or not group_acc[0]:
        return row
    wanted = [k for reading in ("per_class", "cells") for k in reading_metrics_of(reading)]
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


def realised_share_renamed(row: dict) -> dict:
    """Rows before the data regime section called the realised share ``synthetic_share`` (the config's name for the
    target p): the same number under its own name."""
    if "synthetic_share" in row and "realised_synthetic_share" not in row:
        row = {("realised_synthetic_share" if key == "synthetic_share" else key): value for key, value in row.items()}
    return row


#: every step that brings an older row up to today's fields, applied in order to every row read back; a step
#: leaves a row that already has its fields unchanged
ROW_MIGRATIONS: list[Callable[[dict], dict]] = [add_missing_readings, realised_share_renamed]


def migrate_row(row: dict) -> dict:
    """A row as read from results.jsonl, brought up to today's fields by ``ROW_MIGRATIONS``."""
    for step in ROW_MIGRATIONS:
        row = step(row)
    return row
