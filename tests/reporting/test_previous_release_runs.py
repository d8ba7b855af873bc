"""Runs written by the previous release (the data regime's keys in ``data`` and ``loop``, the realised share called
``synthetic_share`` in rows) report as the same experiment as new runs, with the same numbers."""

import json

import yaml

from datamodules.regime_migration import to_previous_layout
from records.results import ROW_MIGRATIONS, migrate_row, realised_share_renamed
from reporting.runs import group_runs, load_run
from reporting.statistics import aggregate
from tests.fakes.run_dirs import make_run


def test_a_previous_row_reports_its_realised_share_under_the_new_name():
    old = {"generation": 1, "target_share": 0.5, "synthetic_share": 0.2, "n_synthetic": 25}
    assert migrate_row(old) == {"generation": 1, "target_share": 0.5, "realised_synthetic_share": 0.2,
                                 "n_synthetic": 25}
    assert list(migrate_row(old)) == ["generation", "target_share", "realised_synthetic_share", "n_synthetic"]
    current = {"generation": 1, "realised_synthetic_share": 0.2}
    assert migrate_row(current) == current  # a current row is left as it is
    assert realised_share_renamed in ROW_MIGRATIONS


def as_previous_release(path) -> None:
    """Rewrite a run directory as the previous release wrote it: old config layout, old row field."""
    config = yaml.safe_load((path / "config.yaml").read_text())
    config["data"]["regime"].update(capacity=None, oversample=False)
    config["loop"]["samples_per_generation"] = 100
    (path / "config.yaml").write_text(yaml.safe_dump(to_previous_layout(config), sort_keys=False))
    rows = [json.loads(line) for line in (path / "results.jsonl").read_text().splitlines()]
    old_rows = [{("synthetic_share" if k == "realised_synthetic_share" else k): v for k, v in row.items()}
                for row in rows]
    (path / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in old_rows))


def test_previous_and_new_runs_of_one_experiment_form_one_group_with_the_same_numbers(tmp_path):
    def complete(config):
        config["data"]["regime"].update(capacity=None, oversample=False)
        config["loop"]["samples_per_generation"] = 100

    new = [make_run(tmp_path / "new" / f"seed_{seed}", seed, config_edit=complete) for seed in (0, 1)]
    old = [make_run(tmp_path / "old" / f"seed_{seed}", seed) for seed in (0, 1)]
    for path in old:
        as_previous_release(path)
    assert "stack_policy" in (old[0] / "config.yaml").read_text()
    assert '"synthetic_share"' in (old[0] / "results.jsonl").read_text()

    mixed = group_runs([load_run(new[0]), load_run(old[1])])
    assert len(mixed) == 1  # the same experiment, whichever release wrote each seed
    old_stats, new_stats = aggregate(group_runs([load_run(p) for p in old])[0]), \
        aggregate(group_runs([load_run(p) for p in new])[0])
    assert old_stats.keys() == new_stats.keys()
    assert any(key[2] == "realised_synthetic_share" for key in old_stats)
    assert all(old_stats[key][0] == new_stats[key][0] for key in old_stats if old_stats[key][2])
