"""The CLI end to end: a tiny 2-generation loop in a subprocess, resume, and validation before any work."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cli
from tests.in_process import run_cli_here

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "configs" / "tiny_mnist.yaml")
METRIC_KEYS = {"acc", "meo", "di", "md", "meo_class", "di_class", "md_class", "meo_cells", "di_cells", "md_cells",
               "meo_eq2", "di_eq3", "meo_eq2_class", "di_eq3_class", "meo_eq2_cells", "di_eq3_cells"}


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def read_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


@pytest.fixture
def tiny_run(tiny_reference_run):
    """The session's plain tiny run (tests/e2e/conftest.py), read in place, and what it printed."""
    return tiny_reference_run.run_dir, tiny_reference_run


def test_every_generation_has_a_complete_result_row(tiny_run):
    run_dir, proc = tiny_run
    rows = read_rows(run_dir)
    assert [(r["generation"], r["classifier"]) for r in rows] == [(0, "tiny_cnn"), (1, "tiny_cnn"), (2, "tiny_cnn")]
    for row in rows:
        assert METRIC_KEYS <= row.keys()
        assert row["seed"] == 0 and row["dataset"] == "colored_mnist"
        assert 0.0 <= row["acc"] <= 1.0 and 0.0 <= row["meo"] <= 1.0 and 0.0 <= row["di"] <= 1.0
        assert len(row["acc_rank"]) == 3 and row["acc_rank"] == sorted(row["acc_rank"])
        # with 3 subgroups the mean pairwise gap is 2/3 of the largest: MEO = 1 - 2 MD / 3 when both come from the
        # same subgroup accuracies (pooled, and per class averaged over the classes)
        assert row["meo"] == pytest.approx(1 - 2 * row["md"] / 3, abs=1e-6) and row["md"] > 0
        assert row["meo_class"] == pytest.approx(1 - 2 * row["md_class"] / 3, abs=1e-6)
        # eq. 2 as printed counts every pair twice; the cells reading is over the 10 x 3 (digit, colour) cells
        assert row["meo_eq2"] == pytest.approx(2 * row["meo"] - 1, abs=1e-6)
        assert row["md_cells"] >= row["md_class"] - 1e-6 and 0.0 <= row["meo_cells"] <= 1.0
        assert row["n_real"] == 400 and row["wall_s"] > 0
    # generation 0 is real data only
    assert (rows[0]["n_synthetic"], rows[0]["stack_size"], rows[0]["stack_generations"]) == (0, 0, [])
    assert (rows[0]["realised_synthetic_share"], rows[0]["synthetic_reuse"], rows[0]["target_share"]) == (0.0, 0.0, 0.5)
    # the stack keeps 1 generation: 90 samples after the 10% filter, smaller than p = 0.5's target of 400 per
    # epoch, so every epoch uses the whole stack once (realised share 90 / 490, each stack sample drawn once)
    assert [(r["n_synthetic"], r["stack_size"], r["stack_generations"]) for r in rows[1:]] == [
        (90, 90, [1]), (90, 90, [2])]
    for row in rows[1:]:
        assert row["realised_synthetic_share"] == pytest.approx(90 / 490) and row["synthetic_reuse"] == 1.0
        assert (row["filter_kept"], row["filter_dropped"]) == (90, 10)
        assert row["fid"] > 0 and row["fid_kept"] > 0 and row["fid_kept"] != row["fid"]
        assert 0 <= row["quality_q"] <= 1 and 0 <= row["imbalance_u"] <= 1
        assert 0 <= row["quality_q_kept"] <= 1 and 0 <= row["imbalance_u_kept"] <= 1
        assert -1 <= row["majority_gain"] <= 1 and -1 <= row["majority_gain_kept"] <= 1
    assert rows[0].get("fid") is None and rows[0].get("fid_kept") is None
    assert "FID generation 1:" in proc.stdout and "filters kept 90/100 samples of generation 2" in proc.stdout
    table = " | ".join(f"{g}: {rows[g]['fid']:.2f} / {rows[g]['fid_kept']:.2f}" for g in (1, 2))
    assert f"FID by generation (Table 1; raw block / kept): {table}" in proc.stdout
    assert "generation 2/2 - training tiny_cnn" in proc.stdout
    assert f"result rows in {run_dir}" in proc.stdout


def test_run_directory_holds_config_state_checkpoints_and_stack(tiny_run):
    run_dir, _ = tiny_run
    assert (run_dir / "config.yaml").read_text().count("tiny_cnn") == 1
    state = json.loads((run_dir / "state.json").read_text())
    assert state["completed"][:6] == ["g0/classifier/tiny_cnn", "g0/evaluate/tiny_cnn", "g1/generator",
                                      "g1/generate", "g1/push", "g1/classifier/tiny_cnn"]
    assert len(state["completed"]) == 2 + 2 * 5
    for g in range(3):
        assert (run_dir / f"gen_{g:02d}" / "classifiers" / "tiny_cnn" / "checkpoints" / "best.ckpt").exists()
    assert (run_dir / "gen_01" / "generator" / "checkpoints" / "last.ckpt").exists()
    manifest = json.loads((run_dir / "stack" / "manifest.json").read_text())
    assert [b["generation"] for b in manifest["blocks"]] == [2]
    assert (run_dir / "gen_02" / "samples.png").stat().st_size > 0
    assert len(list((run_dir / "gen_01" / "contact_sheets").glob("*.png"))) == 1  # 100 samples per sheet
    block = state["blocks"]["1"]
    assert block["filters"]["uncertainty"]["kept_per_class"] and len(block["filters"]["uncertainty"][
        "score_histogram"]["counts"]) == 20


def test_tensorboard_has_per_generation_curves_and_per_stage_logs(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = tiny_run
    summary = EventAccumulator(str(run_dir / "tensorboard" / "summary"))
    summary.Reload()
    tags = set(summary.Tags()["scalars"])
    assert {"tiny_cnn/acc", "tiny_cnn/meo", "tiny_cnn/di", "tiny_cnn/md", "tiny_cnn/acc_rank_1"} <= tags
    assert [e.step for e in summary.Scalars("tiny_cnn/acc")] == [0, 1, 2]
    assert [round(e.value, 5) for e in summary.Scalars("tiny_cnn/meo")] == [
        round(r["meo"], 5) for r in read_rows(run_dir)]
    assert "samples/generated" in summary.Tags()["images"]
    assert "filters/uncertainty_scores" in summary.Tags()["histograms"]
    assert [e.step for e in summary.Scalars("generator/fid")] == [1, 2]
    assert "filters/uncertainty_per_class/text_summary" in summary.Tags()["tensors"]
    assert not {"tiny_cnn/fid", "tiny_cnn/filter_kept", "tiny_cnn/quality_q"} & tags  # only under generator/
    assert "custom_scalars__config__" in summary.Tags()["tensors"]
    stage = EventAccumulator(str(run_dir / "tensorboard" / "gen_00" / "tiny_cnn"))
    stage.Reload()
    assert {"test/acc", "test/meo", "test/subgroup_acc_0", "test/acc_rank_1", "val/acc"} <= set(
        stage.Tags()["scalars"])
    # no noise: no hp_metric = -1 in any stage run, no empty run for the generation stage
    runs = sorted(p.parent.relative_to(run_dir / "tensorboard").as_posix()
                  for p in (run_dir / "tensorboard").glob("gen_*/*/events.out.tfevents.*"))
    assert "gen_01/generate" not in runs and {"gen_00/tiny_cnn", "gen_01/generator", "gen_01/tiny_cnn"} <= set(runs)
    for name in runs:
        events = EventAccumulator(str(run_dir / "tensorboard" / name))
        events.Reload()
        assert "hp_metric" not in events.Tags()["scalars"], name
    assert not (run_dir / "tensorboard" / "gen_01" / "generate").exists()


def test_rerunning_the_same_command_resumes_without_duplicating(tiny_reference_run, tmp_path):
    run_dir = tiny_reference_run.copy_to(tmp_path / "run")
    before = (run_dir / "results.jsonl").read_text()
    # where it runs may change between a run and its resume (another allocation after a requeue)
    proc = run_cli("fit", "--config", TINY, "--loop.run_dir", str(run_dir), "--trainer.devices", "2",
                   "--trainer.strategy", "ddp", "--trainer.enable_progress_bar", "true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming" in proc.stdout and "training" not in proc.stdout
    assert (run_dir / "results.jsonl").read_text() == before


def test_a_different_config_on_an_existing_run_is_refused_untouched(tiny_reference_run, tmp_path, capsys):
    run_dir = tiny_reference_run.copy_to(tmp_path / "run")
    before = (run_dir / "state.json").read_text()
    code = cli.main(["fit", "--config", TINY, "--loop.run_dir", str(run_dir),
                     "--data.regime.synthetic_share", "0.25"])
    err = capsys.readouterr().err
    assert code == 2
    assert "holds a run with a different config" in err and "synthetic_share: 0.25" in err  # the difference
    assert "overwrite" not in err  # no message recommends deleting a run the user did not ask to lose
    assert (run_dir / "state.json").read_text() == before


BAD_INPUTS = [
    (["--classifiers", '[{"arch": "resnet9000"}]'], "unknown architecture 'resnet9000'"),
    (["--data.source.init_args.color_probs", "[[0.5, 0.5, 0.5]]"], "color_probs"),
    (["--data.source.init_args.source", "torchvision", "--data.source.init_args.root", "/nonexistent/mnist"],
     "/nonexistent/mnist"),
    (["--classifiers", '[{"arch": "tiny_cnn", "max_epochs": 0}]'], "max_epochs must be > 0"),
    (["--data.regime.synthetic_share", "1.0", "--data.regime.policy", "accumulate"],
     "data.regime.synthetic_share (p) must be in [0, 1), or 1 with data.regime.policy in ('fifo', 'replace')"),
    (["--data.regime.capacity", "50"], "data.regime.capacity 50 is smaller than one generation's block"),
    (["--data.regime.window", "0"], "data.regime.window must be >= 1"),
    (["--data.regime.policy", "lifo"], "data.regime.policy must be one of ('fifo', 'replace', 'accumulate', "
                                       "'subsample', 'fresh'), got 'lifo'"),
    (["--loop.generations", "-1"], "loop.generations must be >= 0"),
    (["--model.init_args.image_shape", "[1, 28, 28]"], "stores generated images at its own shape [3, 28, 28]"),
    (["--trainer.strategy", "ddp_spawn"], "use strategy: ddp"),
    (["--filters", '[{"class_path": "filters.UncertaintyFilter", "init_args": {"ratio": 1.5}}]'],
     "UncertaintyFilter.ratio must be a number in [0, 1)"),
    (["--filters", '[{"class_path": "filters.UncertaintyFilter", "init_args": {"ratio": 1.0}}]'],
     "1 would drop them all"),
    (["--quality.reference_classifier", "vgg19"], "quality.reference_classifier='vgg19' is not a configured"),
    (["--filters", '[{"class_path": "callbacks.filters.UncertaintyFilter", "init_args": {"ratio": 0.1}}]'],
     "class path callbacks.filters.UncertaintyFilter has moved: use filters.UncertaintyFilter"),
    (["--loop.generationz", "2"], "the command line: unknown option `--loop.generationz`: did you mean "
                                  "`loop.generations`"),
    (["--loop.generation", "2"], "unknown option `--loop.generation`: did you mean `loop.generations`"),  # no abbrev.
    (["--ckpt_path", "x.ckpt"], "unknown option `--ckpt_path`"),
    (["--trainer.fast_dev_run", "true"], "trainer.fast_dev_run is not used: a smoke run"),
    (["--trainer.max_epochs", "3"], "trainer.max_epochs is not used: each stage sets its own"),
    (["--trainer.default_root_dir", "/tmp"], "trainer.default_root_dir is not used: every stage writes into"),
    (["--trainer.logger", "false"], "trainer.logger is not used"),
    (["--trainer.enable_checkpointing", "false"], "trainer.enable_checkpointing is not used"),
    (["--trainer.use_distributed_sampler", "false"], "trainer.use_distributed_sampler is not used"),
    (["--loop.generations", "two"], 'Parser key "loop.generations"'),
    # a plug-in that refuses its argument while it is built: one line each kind, not jsonargparse's union traceback
    (["--model.init_args.latent_dim", "0"], "model.init_args.latent_dim must be a positive integer, got 0"),
    (["--quality.fid.num_samples", "1"], "quality.fid.num_samples must be >= 2, got 1"),
    (["--filters", '[{"class_path": "filters.ClipScoreFilter", "init_args": {"ratio": 0.1, "template": "x"}}]'],
     "{class_name}"),
]


@pytest.mark.parametrize("extra, message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_fails_before_any_work_with_one_clear_message(tmp_path, capsys, extra, message):
    run_dir = tmp_path / "run"
    code = cli.main(["fit", "--config", TINY, "--loop.run_dir", str(run_dir), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert "usage:" not in err and len(err.strip().splitlines()) == 1  # one line, the error first
    assert not run_dir.exists()


def test_configured_callbacks_reach_every_stage_trainer(tmp_path):
    """A trainer callback given on the command line runs in every stage (training, evaluation, generation) unchanged:
    here StepTiming, which records each classifier training epoch and leaves the GAN's manual optimization alone."""
    run_dir = tmp_path / "run"
    proc = run_cli_here("fit", "--config", TINY, "--loop.run_dir", str(run_dir), "--loop.generations", "1",
                        "--trainer.callbacks+=callbacks.step_timing.StepTiming")  # in this process
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    timed = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("step_timing.jsonl"))
    assert timed == ["gen_00/classifiers/tiny_cnn/step_timing.jsonl", "gen_01/classifiers/tiny_cnn/step_timing.jsonl"]
    for path, samples_per_epoch in zip(timed, [400, 400 + 90]):  # generation 1 adds the 90 kept synthetic samples
        records = [json.loads(line) for line in (run_dir / path).read_text().splitlines()]
        assert [r["epoch"] for r in records] == [0, 1]
        assert all(0 < r["model_s"] < r["epoch_s"] and r["samples"] == samples_per_epoch for r in records)
