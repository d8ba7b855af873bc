"""The report's CSV files: every result row (results.csv) and every aggregated cell (aggregate.csv)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from reporting.runs import Group


def write_results_csv(groups: list[Group], path: Path) -> None:
    """Every result row of every run, with ``group`` and ``run_dir`` columns (lists and dicts JSON-encoded)."""
    columns: dict[str, None] = {"group": None, "run_dir": None}
    for group in groups:
        for row in group.rows:
            columns.update(dict.fromkeys(row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        for group in groups:
            for run in group.runs:
                for row in run.rows:
                    cells = {k: json.dumps(v) if isinstance(v, (list, dict)) else ("" if v is None else v)
                             for k, v in row.items()}
                    writer.writerow({**cells, "group": group.name, "run_dir": str(run.path)})


def write_aggregate_csv(groups: list[Group], stats_by_group: dict[str, dict], path: Path) -> None:
    """group, dataset, classifier, generation, metric, mean, std (ddof=1), n; a mean of -inf (DI eq. 3 with a seed at
    -inf) is written as ``-inf``, and the metric ``<metric>:infinite_seeds`` counts those seeds."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["group", "dataset", "classifier", "generation", "metric", "mean", "std_ddof1", "n"])
        for group in groups:
            for (classifier, g, metric), (mean, std, n) in sorted(stats_by_group[group.name].items(),
                                                                   key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
                writer.writerow([group.name, group.dataset, classifier, g, metric,
                                 "" if math.isnan(mean) else repr(mean),
                                 "" if not math.isfinite(std) else repr(std), n])
