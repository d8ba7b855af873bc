"""The sandbox's report section: its figure's legend names each group by its regime."""

from __future__ import annotations

from pathlib import Path

import yaml

from reporting.figures import setting_labels
from reporting.runs import expand_run_dirs, group_runs, load_run
from sandbox.report import legend_labels
from sandbox.sweep import load_config, run_sandbox

TINY = Path(__file__).resolve().parents[1] / "configs" / "sandbox" / "tiny.yaml"


def _groups(patterns: list[str]):
    return group_runs([load_run(p) for p in expand_run_dirs(patterns)])


def test_the_legend_names_regimes_and_falls_back_to_the_settings_when_names_repeat(tmp_path):
    run_sandbox(load_config(str(TINY), str(tmp_path / "a"), 2))
    groups = _groups([f"{tmp_path}/a/*/seed_*"])
    assert sorted(legend_labels(groups).values()) == ["gaussian_replace", "mixture_fifo"]
    other = yaml.safe_load(TINY.read_text())
    other["world"]["n_train_per_class"] = 20  # the same regime names on another world
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    run_sandbox(load_config(str(tmp_path / "other.yaml"), str(tmp_path / "b"), 2))
    both = _groups([f"{tmp_path}/a/*/seed_*", f"{tmp_path}/b/*/seed_*"])
    assert len(both) == 4 and legend_labels(both) == setting_labels(both)
    assert any("n_train_per_class=20" in label for label in legend_labels(both).values())
