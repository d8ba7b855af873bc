"""The TensorBoard summary is rebuilt from the run state: curves against the generation, filter histograms."""

from types import SimpleNamespace

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from simulation.run_directory import RunDirectory
from simulation.summary import write_generation_summary


def test_summary_plots_each_row_against_its_generation_and_each_block_once(tmp_path):
    run = RunDirectory(tmp_path)
    run.create("config", "new", "launch")
    for generation, (acc, md) in enumerate([(0.9, 0.1), (0.8, 0.2), (0.85, 0.15)]):
        row = {"generation": generation, "classifier": "lenet", "acc": acc, "md": md, "acc_rank": [0.7, 0.95],
               "fid": None if generation == 0 else 10.0 / generation}
        run.mark_done(f"g{generation}/evaluate/lenet", row)
    histogram = {"counts": [1, 3], "edges": [0.0, 0.5, 1.0]}
    filters = {"uncertainty": {"score_histogram": histogram, "kept_per_class": [2, 1], "dropped_per_class": [0, 1]}}
    run.mark_done("g1/push", blocks=run.with_block_report(1, fid=10.0, filter_kept=3, filters=filters))
    write_generation_summary(run, SimpleNamespace(class_names=["a", "b"]))
    write_generation_summary(run, SimpleNamespace(class_names=["a", "b"]))  # rebuilt, never appended

    summary = EventAccumulator(str(tmp_path / "tensorboard" / "summary"))
    summary.Reload()
    assert [(e.step, round(e.value, 6)) for e in summary.Scalars("lenet/acc")] == [(0, 0.9), (1, 0.8), (2, 0.85)]
    assert [e.step for e in summary.Scalars("lenet/fid")] == [1, 2]
    assert [round(e.value, 6) for e in summary.Scalars("lenet/acc_rank_1")] == [0.7] * 3
    assert [(e.step, e.value) for e in summary.Scalars("generator/filter_kept")] == [(1, pytest.approx(3.0))]
    assert "filters/uncertainty_scores" in summary.Tags()["histograms"]
