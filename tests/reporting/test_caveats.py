"""What the report says it knows and does not: opposite pooled/per-class trends, unfinished runs, few seeds, FID
features; each with known values."""

from __future__ import annotations

import csv
import re

import pytest

from common.errors import ConfigError
from reporting.caveats import fairness_disagreements, fid_features_text
from reporting.report import report_main
from reporting.runs import group_runs, load_run
from reporting.statistics import aggregate
from tests.fakes.run_dirs import dataset_card, make_row, make_run, three_seeds

# the quickstart's pattern of issue 16: pooled MEO up, per-class MEO and worst-subgroup accuracy down
POOLED = {"lenet": (0.946, 0.95, 0.96, 0.974), "vgg19": (0.90, 0.91, 0.92, 0.93)}
PER_CLASS = {"lenet": (0.889, 0.88, 0.87, 0.868), "vgg19": (0.80, 0.81, 0.82, 0.83)}
WORST = {"lenet": (0.81, 0.80, 0.79, 0.77), "vgg19": (0.7, 0.7, 0.7, 0.7)}


def trend_rows(seed: int = 0) -> list[dict]:
    return [{**make_row(0, 0, c, "colored_mnist"), "generation": g, "seed": seed, "meo": POOLED[c][g],
             "meo_class": PER_CLASS[c][g], "acc_rank": [WORST[c][g], 0.9, 0.95]}
            for g in range(4) for c in ("lenet", "vgg19")]


def test_opposite_pooled_and_per_class_trends_are_said_in_one_line(tmp_path):
    run = make_run(tmp_path / "quickstart" / "seed_0", 0, planned=3, rows=trend_rows())
    report_main([str(run)], str(tmp_path / "report"))
    summary = (tmp_path / "report" / "summary.md").read_text()
    line = ("- **quickstart / lenet: pooled and per-class fairness disagree** (generation 0 -> 3): pooled MEO rises "
            "0.946 -> 0.974 while per-class MEO falls 0.889 -> 0.868, and worst-subgroup accuracy falls 0.810 -> "
            "0.770. Pooled metrics average subgroups over classes; read the per-class ones "
            "(`figures/quickstart__overview.png` shows both).")
    assert line in summary.splitlines()
    assert "vgg19: pooled and per-class fairness disagree" not in summary  # both rise: no disagreement
    assert summary.index("## What this report can and cannot tell") < summary.index("# Dataset:")
    assert (tmp_path / "report" / "figures" / "quickstart__overview.png").is_file()
    assert "quickstart__overview.png](figures/quickstart__overview.png) (the three fairness readings side by side" \
        in summary


def test_changes_below_the_printed_precision_are_not_a_disagreement(tmp_path):
    rows = [{**r, "meo": 0.95 + (0.0004 if r["generation"] == 3 else 0.0)} for r in trend_rows()]
    (group,) = group_runs([load_run(make_run(tmp_path / "run", 0, planned=3, rows=rows))])
    assert fairness_disagreements(group, aggregate(group)) == []
    (group,) = group_runs([load_run(make_run(tmp_path / "run2", 0, planned=3, rows=trend_rows()))])
    (found,) = fairness_disagreements(group, aggregate(group))
    assert (found.classifier, found.first, found.last) == ("lenet", 0, 3)
    assert found.lead == pytest.approx((0.946, 0.974)) and found.worst == pytest.approx((0.81, 0.77))
    assert found.reading == "pooled" and found.other == pytest.approx((0.889, 0.868))


def test_an_unfinished_run_is_flagged_with_generations_done_and_planned(tmp_path):
    finished = make_run(tmp_path / "exp" / "seed_0", 0)
    rows = [make_row(1, g, c, "colored_mnist") for g in (0, 1, 2) for c in ("lenet", "vgg19")
            if (g, c) != (2, "vgg19")]  # generation 2 of vgg19 still running
    unfinished = make_run(tmp_path / "exp" / "seed_1", 1, rows=rows)
    report_main([str(finished), str(unfinished)], str(tmp_path / "report"))
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert (f"- **Unfinished run** `{unfinished}` (exp): 2/3 generations (0-2) done; its numbers cover only those "
            "generations (re-run the same `cli.py fit` command to finish it).") in summary
    assert f"`{finished}`" not in summary.split("## What this report")[1].split("# Dataset")[0]
    assert "| exp | colored_mnist | 0, 1 (2 seeds) | 0-2 | lenet, vgg19 | `seed_1` unfinished: 2/3 generations" \
        in summary


def test_one_seed_has_no_interval_and_few_seeds_say_how_coarse_it_is(tmp_path):
    run = make_run(tmp_path / "single" / "seed_0", 0)
    report_main([str(run)], str(tmp_path / "one"))
    summary = (tmp_path / "one" / "summary.md").read_text()
    assert "95% CI n/a (1 seed)" in summary and "| n/a (1 seed) |" in summary
    zero_width = [m for m in re.findall(r"\[(\d\.\d{4}), (\d\.\d{4})\]", summary) if m[0] == m[1]]
    assert not zero_width
    assert "1 seed: no interval (n/a) and no verdict" in summary
    with open(tmp_path / "one" / "conjecture.csv", newline="") as f:
        transitions = [r for r in csv.DictReader(f) if r["record"] == "transition"]
    assert transitions and all(r["a_ci_low"] == r["a_ci_high"] == "" for r in transitions)

    report_main([str(p) for p in three_seeds(tmp_path / "runs")], str(tmp_path / "three"))
    summary = (tmp_path / "three" / "summary.md").read_text()
    assert "3 seeds: t intervals on 2 degrees of freedom hold their 95% level but are wide (the critical value is " \
        "4.30 standard errors)" in summary
    assert "covered it in 71-80%" not in summary  # the sandbox's bootstrap coverage: said for sandbox runs only


@pytest.mark.parametrize(("extractors", "expected"), [
    (["classifier:lenet"], "classifier features (lenet), not Inception: not comparable to the paper's Table 1"),
    (["inception-v3"], "Inception-V3 features, as in the paper's Table 1"),
    ([], "feature extractor not recorded in state.json"),
    (["classifier:lenet", "inception-v3"], "mixed feature extractors, so the values are not comparable with each "
     "other: classifier features (lenet), not Inception: not comparable to the paper's Table 1; Inception-V3 "
     "features, as in the paper's Table 1"),
])
def test_fid_features_are_named(extractors, expected):
    assert fid_features_text(extractors) == expected


def test_a_dataset_leading_with_cells_checks_cells_against_per_class(tmp_path):
    """CIFAR and BREEDS lead with the cells reading: the caveat compares cells MEO with per-class MEO (a pooled
    MEO moving the other way is not its business)."""
    card = dataset_card("cifar20", subgroups="per_class", noun="fine class", fairness_reading="cells")
    rows = [{**r, "meo_cells": POOLED[r["classifier"]][r["generation"]], "meo": 0.9} for r in trend_rows()]
    (group,) = group_runs([load_run(make_run(tmp_path / "cifar" / "seed_0", 0, planned=3, rows=rows, card=card))])
    (found,) = fairness_disagreements(group, aggregate(group))
    assert (found.reading, found.other_reading, found.classifier) == ("cells", "per_class", "lenet")
    assert found.text().startswith("**cifar / lenet: cells and per-class fairness disagree** (generation 0 -> 3): "
                                   "cells MEO rises 0.946 -> 0.974 while per-class MEO falls 0.889 -> 0.868")
    pooled_only = [{**r, "meo_cells": 0.9} for r in trend_rows()]  # pooled up, per class down, cells flat
    (group,) = group_runs([load_run(make_run(tmp_path / "flat" / "seed_0", 0, planned=3, rows=pooled_only,
                                             card=card))])
    assert fairness_disagreements(group, aggregate(group)) == []


def _with_data_seed(seed):
    def edit(config):
        config["data"]["source"] = {"class_path": "x.Source", "init_args": {"seed": seed}}
    return edit


def test_the_report_says_what_its_intervals_are_conditional_on(tmp_path):
    fixed = [make_run(tmp_path / "fixed" / f"seed_{s}", s, config_edit=_with_data_seed(0)) for s in (0, 1, 2)]
    following = [make_run(tmp_path / "follow" / f"seed_{s}", s, config_edit=_with_data_seed(s), share=0.25)
                 for s in (0, 1, 2)]
    report_main([str(p) for p in [*fixed, *following]], str(tmp_path / "report"))
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert ("- **fixed**: every interval is conditional on one draw of the data: the split, subsample, colour draw "
            "and (where the source splits it) the test set come from `data.source.init_args.seed: 0` in every run")\
        in summary
    assert ("- **follow**: the data seed (`data.source.init_args.seed`) varies over the runs (0, 1, 2), so its "
            "intervals include the variation of the data split") in summary
    assert "| follow | colored_mnist | 0, 1, 2 (3 seeds) |" in summary  # runs whose data seed follows theirs: one group
    plain = make_run(tmp_path / "plain" / "seed_0", 0)
    report_main([str(plain)], str(tmp_path / "report2"))
    assert "the configs record no data seed" in (tmp_path / "report2" / "summary.md").read_text()


def test_two_runs_of_one_training_seed_with_different_data_seeds_are_refused_with_the_reason(tmp_path):
    first = make_run(tmp_path / "a" / "seed_0", 0, config_edit=_with_data_seed(0))
    second = make_run(tmp_path / "b" / "seed_0", 0, config_edit=_with_data_seed(1))
    with pytest.raises(ConfigError, match="their data seeds differ, 0 and 1"):
        report_main([str(first), str(second)], str(tmp_path / "report"))
    assert not (tmp_path / "report").exists()


def test_runs_that_mix_a_fixed_and_a_following_data_seed_are_refused_not_grouped(tmp_path):
    """Seeds 0 and 1 on data seed 0 and seed 2 on data seed 2 are neither one data draw nor a data seed that follows
    the run seed: grouping them would make the conditional-on line false either way."""
    runs = [make_run(tmp_path / "mixed" / f"seed_{s}", s, config_edit=_with_data_seed(d))
            for s, d in ((0, 0), (1, 0), (2, 2))]
    with pytest.raises(ConfigError, match="runs of one experiment mix data-seed settings"):
        report_main([str(p) for p in runs], str(tmp_path / "report"))
    assert not (tmp_path / "report").exists()
