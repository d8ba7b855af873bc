"""What the report refuses and flags (docs/workflow.md): smoke runs, classifiers near chance, and the provenance
(command lines, weight files) of the Environment section."""

from __future__ import annotations

import json

import pytest
import yaml

from common.errors import ConfigError
from common.image_views import ImageView
from datamodules.facts import DatasetFacts
from reporting.environment import environment_markdown
from reporting.report import report_main
from reporting.runs import load_run
from tests.fakes.run_dirs import SEEDS, make_row, make_run

TEN_CLASSES = DatasetFacts(name="colored_mnist", class_names=tuple(str(d) for d in range(10)), image_shape=(3, 8, 8),
                           classifier_view=ImageView(8),
                           group_names=("red", "green", "blue"), subgroups="pixels", subgroup_noun="colour").to_json()


def test_the_report_refuses_a_smoke_run(tmp_path):
    run = make_run(tmp_path / "smoke" / "seed_0", 0)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["trainer"] = {"fast_dev_run": False, "limit_train_batches": 0.1, "max_steps": -1}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"is a smoke run \(trainer.limit_train_batches=0.1 in .*config.yaml\)"):
        report_main([str(run)], str(tmp_path / "report"))
    assert not (tmp_path / "report").exists()
    config["trainer"]["limit_train_batches"] = 1.0  # the whole data: a result
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    assert load_run(run).seed == 0


def _runs_with_lenet_at(tmp_path, acc_at_generation_2: float, recorded: bool) -> list:
    """Three seeds of 10 classes; lenet's accuracy at generation 2 of seed 0 is ``acc_at_generation_2``; with
    ``recorded`` the rows carry near_chance as the loop writes it, else (older rows) the report judges the accuracy."""
    runs = []
    for seed in SEEDS:
        rows = []
        for generation in (0, 1, 2):
            for classifier in ("lenet", "vgg19"):
                row = make_row(seed, generation, classifier, "colored_mnist")
                if (seed, generation, classifier) == (0, 2, "lenet"):
                    row["acc"] = acc_at_generation_2
                if recorded:
                    row["chance_acc"], row["near_chance"] = 0.1, row["acc"] < 0.15
                rows.append(row)
        runs.append(make_run(tmp_path / "runs" / f"seed_{seed}", seed, rows=rows, card=TEN_CLASSES))
    return runs


@pytest.mark.parametrize("recorded", [True, False], ids=["rows record it", "older rows"])
def test_a_classifier_near_chance_is_flagged_next_to_its_fairness_numbers(tmp_path, recorded, capsys):
    runs = _runs_with_lenet_at(tmp_path, 0.11, recorded)
    report_main([str(p) for p in runs], str(tmp_path / "report"))
    summary = (tmp_path / "report" / "summary.md").read_text()
    note = "lenet is within 5% of chance 0.100 (generation 2 seed 0 acc 0.110): it has not learned there"
    lenet = summary.index("### lenet")
    assert summary.index(f"**Warning**: {note}", lenet) < summary.index("Fairness metrics", lenet)
    assert "- **Near chance** (" in summary and "vgg19 is within" not in summary
    assert "Near chance" in capsys.readouterr().out  # the console notes too
    header = (tmp_path / "report" / "results.csv").read_text().splitlines()[0].split(",")
    assert ("near_chance" in header) is recorded  # the rows' own column, where they record it


def test_a_classifier_clear_of_chance_is_not_flagged(tmp_path):
    runs = _runs_with_lenet_at(tmp_path, 0.15, recorded=False)  # exactly chance + 5 points: not within
    report_main([str(p) for p in runs], str(tmp_path / "report"))
    assert "chance" not in (tmp_path / "report" / "summary.md").read_text().lower()


def test_the_environment_section_shows_command_lines_and_weight_files(tmp_path):
    run = make_run(tmp_path / "run" / "seed_0", 0)
    state = json.loads((run / "state.json").read_text())
    weight = {"what": "ImageNet weights of resnet50", "path": "/w/resnet50.pth", "bytes": 102530333,
              "sha256": "ab" * 32}
    base = {"python": "3.11.7", "torch": "2.6.0", "hostname": "node1"}
    state["environments"] = [{**base, "command_line": "cli.py fit --config configs/a.yaml", "weight_files": []},
                             {**base, "command_line": "cli.py fit --config configs/a.yaml",
                              "weight_files": [weight]},
                             {**base, "command_line": "cli.py fit --config run/config.yaml",
                              "weight_files": [weight]}]
    (run / "state.json").write_text(json.dumps(state))
    text = "\n".join(environment_markdown([load_run(run)]))
    assert f"| `{run}` | `cli.py fit --config configs/a.yaml` |" in text
    assert f"| `{run}` | `cli.py fit --config run/config.yaml` |" in text
    assert text.count("/w/resnet50.pth") == 1  # one row per distinct file
    assert f"| `{run}` | ImageNet weights of resnet50 | `/w/resnet50.pth` | `{'ab' * 32}` | 102530333 |" in text
