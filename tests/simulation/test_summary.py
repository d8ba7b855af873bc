"""The TensorBoard summary is rebuilt from the run state: curves against the generation, each value once where it
belongs (block values under the generator), filter histograms, and a custom-scalars layout."""

from types import SimpleNamespace

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2

from records.run_directory import RunDirectory
from simulation.summary import write_generation_summary


@pytest.fixture
def summary(tmp_path) -> EventAccumulator:
    run = RunDirectory(tmp_path)
    run.create("config", "new", "launch")
    for generation, (acc, md) in enumerate([(0.9, 0.1), (0.8, 0.2), (0.85, 0.15)]):
        block = {} if generation == 0 else {"fid": 10.0 / generation, "filter_kept": 3, "quality_q": 0.5}
        row = {"generation": generation, "classifier": "lenet", "acc": acc, "md": md, "meo": 1 - md,
               "meo_class": 0.8, "acc_rank": [0.7, 0.95], **block}
        run.mark_done(f"g{generation}/evaluate/lenet", [row])
    histogram = {"counts": [1, 3], "edges": [0.0, 0.5, 1.0]}
    filters = {"uncertainty": {"score_histogram": histogram, "kept_per_class": [2, 1], "dropped_per_class": [0, 1]}}
    run.mark_done("g1/push", blocks=run.with_block_report(1, fid=10.0, filter_kept=3, quality_q=0.5, filters=filters))
    run.mark_done("g2/push", blocks=run.with_block_report(2, fid=5.0, filter_kept=3, quality_q=0.5))
    write_generation_summary(run, SimpleNamespace(class_names=["a", "b"]), through=2)
    write_generation_summary(run, SimpleNamespace(class_names=["a", "b"]), through=2)  # nothing new: writes nothing
    events = EventAccumulator(str(tmp_path / "tensorboard" / "summary"), size_guidance={"tensors": 0})
    events.Reload()
    return events


def test_summary_plots_each_row_against_its_generation_and_each_block_once(summary):
    assert [(e.step, round(e.value, 6)) for e in summary.Scalars("lenet/acc")] == [(0, 0.9), (1, 0.8), (2, 0.85)]
    assert [round(e.value, 6) for e in summary.Scalars("lenet/acc_rank_1")] == [0.7] * 3
    assert [(e.step, e.value) for e in summary.Scalars("generator/fid")] == [(1, 10.0), (2, 5.0)]
    assert [(e.step, e.value) for e in summary.Scalars("generator/filter_kept")] == [(1, 3.0), (2, 3.0)]
    tags = set(summary.Tags()["scalars"])
    assert not {"lenet/fid", "lenet/filter_kept", "lenet/quality_q"} & tags  # the block's, not the classifier's
    assert "filters/uncertainty_scores" in summary.Tags()["histograms"]


def test_custom_scalars_group_pooled_and_per_class_metrics_per_classifier(summary):
    (config,) = summary.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(config.tensor_proto.string_val[0])
    charts = {(category.title, chart.title): list(chart.multiline.tag)
              for category in layout.category for chart in category.chart}
    lenet = {title: tags for (category, title), tags in charts.items() if category == "lenet across generations"}
    assert lenet == {
        "lenet: accuracy and worst-subgroup accuracy (x = generation)": ["^lenet/acc$", "^lenet/acc_rank_1$"],
        "lenet: MEO pooled, per class and over cells (x = generation)": ["^lenet/meo$", "^lenet/meo_class$",
                                                                       "^lenet/meo_cells$"],
        "lenet: DI pooled, per class and over cells (x = generation)": ["^lenet/di$", "^lenet/di_class$",
                                                                       "^lenet/di_cells$"],
        "lenet: MD pooled, per class and over cells (x = generation)": ["^lenet/md$", "^lenet/md_class$",
                                                                       "^lenet/md_cells$"],
    }
    assert charts[("generator across generations", "generator: FID (x = generation)")] == ["^generator/fid$"]
    assert ("generator across generations", "generator: u_t (subgroup imbalance) (x = generation)") not in charts


def test_the_summary_is_appended_generation_by_generation_never_rewritten(tmp_path):
    """A resume, or the next generation, adds only the generations not yet written: the events already on disk stay
    as they are (an open TensorBoard never sees its curves removed) and no point is written twice."""
    run = RunDirectory(tmp_path)
    run.create("config", "new", "launch")
    source = SimpleNamespace(class_names=["a", "b"])
    run.mark_done("g0/evaluate/lenet", [{"generation": 0, "classifier": "lenet", "acc": 0.9, "acc_rank": [0.7, 0.9]}])
    write_generation_summary(run, source, through=0)
    (first,) = (tmp_path / "tensorboard" / "summary").iterdir()
    written = first.read_bytes()
    run.mark_done("g1/push", blocks=run.with_block_report(1, fid=10.0))
    run.mark_done("g1/evaluate/lenet", [{"generation": 1, "classifier": "lenet", "acc": 0.8, "acc_rank": [0.6, 0.9]}])
    resumed = RunDirectory(tmp_path)  # as a resumed launch reads it
    resumed.load()
    write_generation_summary(resumed, source, through=1)
    write_generation_summary(resumed, source, through=1)
    files = sorted((tmp_path / "tensorboard" / "summary").iterdir())
    assert len(files) == 2 and first.read_bytes() == written
    assert resumed.read_state().summary_generations == [0, 1]
    events = EventAccumulator(str(tmp_path / "tensorboard" / "summary"), size_guidance={"tensors": 0})
    events.Reload()
    assert [(e.step, round(e.value, 6)) for e in events.Scalars("lenet/acc")] == [(0, 0.9), (1, 0.8)]
    assert [(e.step, e.value) for e in events.Scalars("generator/fid")] == [(1, 10.0)]
    # the layout is written again only when it changes (generation 1 added the generator's FID chart)
    assert len(events.Tensors("custom_scalars__config__")) == 2


def test_a_generation_whose_block_exists_but_whose_classifiers_have_not_run_waits_for_its_turn(tmp_path):
    """A run killed after generation 1's generate stage holds its block report but no result row; the resumed
    launch writes the summary after generation 0 first: generation 1 must not be written then, block values
    only, and be skipped later as already written (its accuracy point would be lost)."""
    run = RunDirectory(tmp_path)
    run.create("config", "new", "launch")
    source = SimpleNamespace(class_names=["a", "b"])
    run.mark_done("g0/evaluate/lenet", [{"generation": 0, "classifier": "lenet", "acc": 0.9}])
    run.mark_done("g1/generate", blocks=run.with_block_report(1, fid=10.0))
    write_generation_summary(run, source, through=0)
    assert run.read_state().summary_generations == [0]
    run.mark_done("g1/evaluate/lenet", [{"generation": 1, "classifier": "lenet", "acc": 0.8}])
    write_generation_summary(run, source, through=1)
    events = EventAccumulator(str(tmp_path / "tensorboard" / "summary"))
    events.Reload()
    assert [(e.step, round(e.value, 6)) for e in events.Scalars("lenet/acc")] == [(0, 0.9), (1, 0.8)]
    assert [(e.step, e.value) for e in events.Scalars("generator/fid")] == [(1, 10.0)]


class FrozenClock:
    """time.time that stands still until someone sleeps (so every event file would open in the same second)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_generations_written_within_one_second_are_read_back_in_order(tmp_path, monkeypatch):
    """Event files opened in the same second sort by the writer counter as text (``.10`` before ``.9``): the summary
    waits for a later second, so TensorBoard reads generation 2 after generation 1 however fast they ran."""
    import tensorboard.summary.writer.event_file_writer as event_file_writer

    import simulation.summary

    clock = FrozenClock(1_800_000_000.0)
    monkeypatch.setattr(event_file_writer, "time", clock)
    monkeypatch.setattr(simulation.summary, "time", clock)
    monkeypatch.setattr(event_file_writer, "_global_uid", event_file_writer.AtomicCounter(8))  # files .8, .9, .10
    run = RunDirectory(tmp_path)
    run.create("config", "new", "launch")
    for generation in range(3):
        run.mark_done(f"g{generation}/evaluate/lenet", [{"generation": generation, "classifier": "lenet",
                                                         "acc": 0.5 + generation / 10}])
        write_generation_summary(run, SimpleNamespace(class_names=["a", "b"]), through=generation)
    files = sorted(p.name for p in (tmp_path / "tensorboard" / "summary").iterdir())
    assert [name.rsplit(".", 1)[1] for name in files] == ["8", "9", "10"]  # name order is write order
    assert clock.now - 1_800_000_000.0 <= 2 * 1.0 + 0.1  # it waited for the next second, no longer
    events = EventAccumulator(str(tmp_path / "tensorboard" / "summary"))
    events.Reload()
    assert [(e.step, round(e.value, 6)) for e in events.Scalars("lenet/acc")] == [(0, 0.5), (1, 0.6), (2, 0.7)]
