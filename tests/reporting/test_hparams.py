"""The report's TensorBoard HParams view: one run per run directory with its hyperparameters and its final and
mean metrics (known values), the experiment summary once at the top, and a folder the report may replace."""

from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata

from common.errors import ConfigError
from reporting.report import report_main
from tests.fakes.run_dirs import GENERATIONS, acc_value, make_row, three_seeds


def events(path) -> EventAccumulator:
    accumulator = EventAccumulator(str(path))
    accumulator.Reload()
    return accumulator


def test_every_run_has_its_hyperparameters_and_final_and_mean_metrics(tmp_path):
    three_seeds(tmp_path / "runs", "biased", share=0.5)
    three_seeds(tmp_path / "runs", "biased_p0", share=0.0)
    out = tmp_path / "report"
    report_main([str(tmp_path / "runs" / "*" / "seed_*")], str(out))
    tensorboard = out / "tensorboard"
    assert sorted(p.relative_to(tensorboard).as_posix() for p in tensorboard.glob("*/seed_*")) == [
        f"{group}/seed_{s}" for group in ("biased", "biased_p0") for s in (0, 1, 2)]

    run = events(tensorboard / "biased_p0" / "seed_1")
    start = metadata.parse_session_start_info_plugin_data(
        run.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG])
    hparams = {k: v.number_value if v.HasField("number_value") else v.string_value for k, v in start.hparams.items()}
    # each classifier's lr and epochs (the fake configs set neither, so the defaults; nor a batch size) and the chain
    assert hparams == {"group": "biased_p0", "dataset": "colored_mnist", "seed": 1.0, "p": 0.0,
                       "policy": "fifo", "window": 3.0, "generations": 2.0, "r": 0.1,
                       "filters": "UncertaintyFilter(r=0.1, quantile, on lenet)", "lenet/lr": 0.001,
                       "lenet/max_epochs": 50.0, "vgg19/lr": 0.001, "vgg19/max_epochs": 50.0}
    final = {tag: run.Scalars(tag)[0].value for tag in run.Tags()["scalars"]}
    assert final["lenet/final_acc"] == pytest.approx(acc_value(1, 2, "lenet"))
    assert final["lenet/mean_acc"] == pytest.approx(sum(acc_value(1, g, "lenet") for g in GENERATIONS) / 3)
    assert final["vgg19/final_meo"] == pytest.approx(make_row(1, 2, "vgg19", "x")["meo"])
    assert final["lenet/final_worst_subgroup_acc"] == pytest.approx(0.51)
    shares = [final[f"data/realised_synthetic_share_gen{g:02d}"] for g in GENERATIONS]
    assert shares == [0.5, 0.5, 0.5]  # the rows' realised share
    assert final["generator/final_fid"] == pytest.approx(121.0) and final["generator/mean_fid"] == pytest.approx(116)

    root = events(tensorboard)
    experiment = metadata.parse_experiment_plugin_data(
        root.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.EXPERIMENT_TAG])
    assert {h.name for h in experiment.hparam_infos} == set(hparams)
    assert {"lenet/final_acc", "vgg19/mean_md_class", "generator/final_fid"} <= {
        m.name.tag for m in experiment.metric_infos}
    p_domain = next(h for h in experiment.hparam_infos if h.name == "p").domain_discrete
    assert [v.number_value for v in p_domain.values] == [0.0, 0.5]


def test_the_view_is_rebuilt_and_a_foreign_folder_is_refused(tmp_path):
    runs = three_seeds(tmp_path / "runs")
    out = tmp_path / "report"
    report_main([str(p) for p in runs], str(out))
    report_main([str(p) for p in runs[:1]], str(out))  # rewritten, not appended: one run left
    assert [p.name for p in (out / "tensorboard").glob("*/seed_*")] == ["seed_0"]
    (out / "tensorboard" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not TensorBoard event files"):
        report_main([str(p) for p in runs], str(out))
    assert (out / "tensorboard" / "notes.txt").read_text() == "mine"
