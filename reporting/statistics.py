"""Per-group numbers: every metric as mean, sample standard deviation (ddof=1) and n over the group's seeds.

DI as printed (eq. 3) is -inf where a zero rate meets a positive one; result rows store that as null beside a finite
bounded DI. Such a seed is counted as -inf, not dropped (dropping it would move the mean up): the mean is then -inf
and ``(classifier, generation, "<metric>:infinite_seeds")`` holds how many seeds were.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from records.results import ACCURACY, BLOCK, DATA, FAIRNESS, PRINTED, metric_names, minus_infinity_when_null
from reporting.runs import Group

#: (mean, std with ddof=1, number of seeds with a value)
Stat = tuple[float, float, int]
#: the row's data-composition and block scalars that are aggregated too (FID has its own table, per generator)
INFINITE_SUFFIX = ":infinite_seeds"


def extra_scalars() -> tuple[str, ...]:
    """The row's data-composition and block scalars that are aggregated too (FID has its own table, per generator)."""
    return (*metric_names(DATA), *(k for k in metric_names(BLOCK) if not k.startswith("fid")))


def mean_std(values: Iterable[float | None]) -> Stat:
    """(mean, sample std with ddof=1, n) over the finite values; std is NaN for n < 2, mean NaN for n = 0.
    An infinite value makes the mean that infinity, the std NaN, and counts in n."""
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    infinite = [v for v in values if math.isinf(v)]
    if infinite:
        return (infinite[0] if len(set(infinite)) == 1 else math.nan), math.nan, len(values)
    kept = values
    if not kept:
        return math.nan, math.nan, 0
    std = float(np.std(kept, ddof=1)) if len(kept) > 1 else math.nan
    return float(np.mean(kept)), std, len(kept)


def row_metrics(row: dict) -> dict[str, float | None]:
    """Every scalar the report aggregates from one result row (ranked accuracies and ablations flattened)."""
    values: dict[str, float | None] = {k: row.get(k) for k in metric_names(ACCURACY, FAIRNESS, PRINTED)}
    ranks = row.get("acc_rank") or []
    for k, v in enumerate(ranks, start=1):
        values[f"acc_rank_{k}"] = v
    finite = [float(v) for v in ranks if v is not None and math.isfinite(float(v))]
    if ranks:  # the mean subgroup accuracy (Figure 7's middle line); undefined when a rank is missing
        values["acc_rank_mean"] = sum(finite) / len(finite) if len(finite) == len(ranks) else None
    for prefix in ("ablation_acc", "ablation_drop"):
        for kind, v in (row.get(prefix) or {}).items():
            values[f"{prefix}.{kind}"] = v
    for k in extra_scalars():
        if row.get(k) is not None:
            values[k] = row[k]
    for printed, bounded in minus_infinity_when_null().items():
        if printed in row and row[printed] is None and _finite(row.get(bounded)):
            values[printed] = -math.inf
    return values


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def aggregate(group: Group) -> dict[tuple[str, int, str], Stat]:
    """(classifier, generation, metric) -> (mean, std ddof=1, n seeds)."""
    cells: dict[tuple[str, int, str], list] = {}
    for row in group.rows:
        for metric, value in row_metrics(row).items():
            cells.setdefault((row["classifier"], int(row["generation"]), metric), []).append(value)
    stats = {key: mean_std(values) for key, values in cells.items()}
    for (classifier, generation, metric), values in cells.items():
        infinite = sum(1 for v in values if v is not None and math.isinf(float(v)))
        if infinite:
            stats[(classifier, generation, metric + INFINITE_SUFFIX)] = (float(infinite), math.nan, len(values))
    return stats


def fid_by_generation(group: Group, key: str = "fid") -> dict[int, Stat]:
    """Generator FID per generation (``fid``: the raw block, Table 1's; ``fid_kept``: the samples the filters kept):
    state.json blocks first, else the generation's result rows."""
    per_gen: dict[int, list[float]] = {}
    for run in group.runs:
        gens = set(run.blocks) | {int(r["generation"]) for r in run.rows}
        for g in sorted(gens):
            value = (run.blocks.get(g) or {}).get(key)
            if value is None:
                value = next((r[key] for r in run.rows if int(r["generation"]) == g and r.get(key) is not None),
                             None)
            if value is not None:
                per_gen.setdefault(g, []).append(value)
    return {g: mean_std(v) for g, v in sorted(per_gen.items())}
