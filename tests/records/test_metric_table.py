"""The metric table is the one catalogue of a row's metrics: it reproduces the report's tables as they were, and a
fairness metric added as table rows plus its computation reaches the TensorBoard summary, the figures, HParams and
the CSVs without another edit."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from records import results
from records.results import FAIRNESS, UNIT_RANGE, Metric, fairness_families, metric_names, reading_metrics_of
from records.run_directory import RunDirectory

STORED_RUN = Path(__file__).resolve().parents[1] / "stored_runs" / "old_run_v1"


def test_the_table_gives_the_readings_and_families_the_report_shows():
    assert reading_metrics_of("pooled") == ("meo", "di", "md", "meo_eq2", "di_eq3")
    assert reading_metrics_of("per_class") == ("meo_class", "di_class", "md_class", "meo_eq2_class", "di_eq3_class")
    assert reading_metrics_of("cells") == ("meo_cells", "di_cells", "md_cells", "meo_eq2_cells", "di_eq3_cells")
    assert fairness_families() == [("meo", "meo_class", "meo_cells"), ("di", "di_class", "di_cells"),
                                   ("md", "md_class", "md_cells")]
    assert results.minus_infinity_when_null() == {"di_eq3": "di", "di_eq3_class": "di_class",
                                                  "di_eq3_cells": "di_cells"}
    assert results.metric("meo_eq2_cells").y_range == (-1.0, 1.0) and results.metric("di_eq3").y_range is None


def test_every_metric_is_a_field_of_the_result_row():
    fields = set(results.ResultRow.__dataclass_fields__)
    assert set(metric_names()) <= fields and len(set(metric_names())) == len(metric_names())


def _gap(rates: list[float | None]) -> float | None:
    values = [v for v in rates if v is not None]
    return max(values) - min(values) if values else None


def add_gap(row: dict) -> dict:
    """The new metric's computation: the spread of subgroup accuracies (pooled: over ranked subgroups; per class:
    within each class, averaged; cells: over every (class, subgroup) cell)."""
    if "gap" in row or not row.get("group_acc"):
        return row
    per_class = [_gap(r) for r in row["group_acc"]]
    return {**row, "gap": _gap(row["acc_rank"]), "gap_class": sum(per_class) / len(per_class),
            "gap_cells": _gap([v for r in row["group_acc"] for v in r])}


@pytest.fixture
def gap_metric(monkeypatch):
    """A fairness metric added the way a contributor adds one: its rows in the table, its computation."""
    rows = tuple(Metric("gap" + suffix, FAIRNESS, "GAP" + name, "GAP (max - min subgroup accuracy)", reading, "gap",
                        UNIT_RANGE)
                 for reading, suffix, name in (("pooled", "", ""), ("per_class", "_class", " (per class)"),
                                               ("cells", "_cells", " (cells)")))
    monkeypatch.setattr(results, "METRICS", (*results.METRICS, *rows))
    monkeypatch.setattr(results, "ROW_MIGRATIONS", [*results.ROW_MIGRATIONS, add_gap])


def test_a_new_fairness_metric_reaches_the_tensorboard_summary(tmp_path, gap_metric):
    from simulation.summary import custom_scalars_layout, generation_scalars

    run = RunDirectory(tmp_path)
    run.create("config", "new", "launch")
    row = add_gap({"generation": 0, "classifier": "lenet", "acc": 0.8, "acc_rank": [0.5, 0.9],
                   "group_acc": [[0.5, 0.9], [0.7, 0.8]]})
    run.mark_done("g0/evaluate/lenet", [row])
    scalars = generation_scalars(run, 0)
    assert scalars["lenet/gap"] == pytest.approx(0.4) and scalars["lenet/gap_class"] == pytest.approx(0.25)
    assert scalars["lenet/gap_cells"] == pytest.approx(0.4)
    charts = custom_scalars_layout(["lenet"], False, set())["lenet across generations"]
    chart = charts["lenet: GAP pooled, per class and over cells (x = generation)"]
    assert chart == ["Multiline", ["^lenet/gap$", "^lenet/gap_class$", "^lenet/gap_cells$"]]


def test_a_new_fairness_metric_reaches_the_report_csvs_figures_and_hparams(tmp_path, gap_metric):
    from reporting.figures import overview_panels, plot_metrics
    from reporting.hparams import hparam_metrics
    from reporting.report import report_main
    from reporting.runs import group_runs, load_run
    from reporting.statistics import aggregate

    out = tmp_path / "report"
    report_main([str(STORED_RUN)], str(out))
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    # generation 0 of the stored run: ranked subgroup accuracies 0.01176..., 0.1, 0.18823...
    assert float(rows[0]["gap"]) == pytest.approx(0.1882352977991104 - 0.0117647061124444)
    with open(out / "aggregate.csv") as f:
        means = {(r["generation"], r["metric"]): float(r["mean"]) for r in csv.DictReader(f)}
    for row in rows:
        for name in ("gap", "gap_class", "gap_cells"):
            assert means[(row["generation"], name)] == pytest.approx(float(row[name]))
    summary = (out / "summary.md").read_text()
    assert "| GAP |" in summary and "| GAP (per class) |" in summary and "| GAP (cells) |" in summary

    (group,) = group_runs([load_run(STORED_RUN)])
    figure = plot_metrics(group, aggregate(group), ["acc", *reading_metrics_of("pooled")], tmp_path / "m.png", [])
    assert "GAP" in [ax.get_title() for ax in figure.axes]
    assert ("GAP", "GAP (max - min subgroup accuracy)",
            [("gap", "pooled", "-"), ("gap_class", "per class", "--"), ("gap_cells", "cells", ":")]) \
        in overview_panels()
    assert hparam_metrics()["gap_cells"] == "gap_cells"
