"""The paper's comparative claims as statistics (reporting/comparisons.py), each against a known answer computed here
from the textbook formulas, and ``cli.py report`` end to end over a biased and an unbiased group."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from scipy import stats

from reporting.comparisons import accuracy_correlation, comparisons, welch, worst_vs_best
from reporting.runs import group_runs, load_run
from tests.fakes.run_dirs import make_row, make_run
from tests.in_process import run_cli_here

SEEDS = (0, 1, 2)
GENERATIONS = range(5)
#: per-seed growth of 1 - MEO per generation, and per-seed fall of the worst subgroup's accuracy per generation
GROWTH = {"unbiased": (0.00, 0.02, -0.01), "biased": (0.20, 0.25, 0.18)}
WORST_FALL = {"unbiased": (0.0, 0.005, -0.005), "biased": (0.02, 0.03, 0.025)}
BEST_FALL = 0.002


def rows_for(name: str, seed: int, dataset: str = "colored_mnist", classifiers=("lenet",)) -> list[dict]:
    rows = []
    for g in GENERATIONS:
        for classifier in classifiers:
            row = make_row(seed, g, classifier, dataset)
            row["meo"] = 1 - 0.1 * (1 + GROWTH[name][seed]) ** g
            row["acc_rank"] = [0.5 - WORST_FALL[name][seed] * g, 0.7, 0.9 - BEST_FALL * g]
            rows.append(row)
    return rows


def biased_and_unbiased(root) -> list:
    paths = []
    for name in ("unbiased", "biased"):
        def edit(config, biased=name == "biased"):
            config["data"]["source"] = {"class_path": "datamodules.colored_mnist.ColoredMNIST",
                                        "init_args": {"biased": biased, "seed": 0}}
        paths += [make_run(root / name / f"seed_{s}", s, rows=rows_for(name, s), classifiers=("lenet",), planned=4,
                           config_edit=edit) for s in SEEDS]
    return paths


def welch_by_hand(first: np.ndarray, second: np.ndarray) -> tuple[float, float, float]:
    """Welch-Satterthwaite: the difference of means, and its 95% interval."""
    va, vb = first.var(ddof=1) / first.size, second.var(ddof=1) / second.size
    df = (va + vb) ** 2 / (va ** 2 / (first.size - 1) + vb ** 2 / (second.size - 1))
    difference = second.mean() - first.mean()
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    return difference, difference - half, difference + half


def t_interval_by_hand(values: np.ndarray) -> tuple[float, float, float]:
    half = stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size)
    return values.mean(), values.mean() - half, values.mean() + half


def test_welch_matches_the_welch_satterthwaite_interval():
    first, second = np.array([0.1, 0.3, 0.2, 0.25]), np.array([0.5, 0.9, 0.6])
    assert welch(first, second)[:3] == pytest.approx(welch_by_hand(first, second))
    assert welch(np.array([1.0, 1.0]), np.array([2.0, 2.0])) == (1.0, 1.0, 1.0, 0.0)  # no spread: exact
    assert all(math.isnan(v) for v in welch(np.array([1.0]), np.array([2.0, 3.0]))[1:])


def test_cli_report_compares_biased_with_unbiased_and_prints_worst_vs_best_and_seeds_needed(tmp_path):
    biased_and_unbiased(tmp_path / "runs")
    out = tmp_path / "report"
    proc = run_cli_here("report", str(tmp_path / "runs" / "*" / "seed_*"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr

    slopes = {name: np.log1p(np.array(GROWTH[name])) for name in GROWTH}
    difference, low, high = (100 * math.expm1(v) for v in welch_by_hand(slopes["unbiased"], slopes["biased"]))
    line = (f"[genbias] Section 4.2 (Figs. 3-4), biased vs unbiased initialisation: colored_mnist / lenet: biased vs "
            f"unbiased: difference of the per-generation trend of 1-meo {difference:+.2f} %/generation (relative), "
            f"95% CI [{low:+.2f}, {high:+.2f}]")
    assert any(x.startswith(line) for x in proc.stdout.splitlines()), proc.stdout
    assert low > 0  # the biased group's bias grows faster, and the interval says so
    assert "1-meo of biased rises faster (or falls slower) than of unbiased" in proc.stdout

    summary = (out / "summary.md").read_text()
    assert "## Comparisons the paper makes" in summary
    fall = -np.array(WORST_FALL["biased"]) + BEST_FALL  # worst-minus-best slope of each seed
    mean, low, high = (100 * v for v in t_interval_by_hand(fall))
    assert (f"- Fig. 7, worst vs best subgroup: biased / lenet: worst {-100 * np.mean(WORST_FALL['biased']):+.2f}, "
            f"best {-100 * BEST_FALL:+.2f} accuracy points/generation; worst-minus-best slope {mean:+.2f} accuracy "
            f"points/generation, 95% CI [{low:+.2f}, {high:+.2f}]") in summary
    assert "the worst subgroup falls more steeply (or rises more slowly) than the best" in summary
    assert "Fig. 7, worst vs best subgroup: unbiased / lenet" in summary
    assert "no evidence of a different slope with 3 seeds" in summary  # the unbiased group's worst barely moves
    assert "seeds needed for 80% power: 5%/generation: " in summary

    with open(out / "comparisons.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    section = [r for r in rows if r["figure"].startswith("Section 4.2")]
    assert len(section) == 2 and float(section[0]["estimate"]) == pytest.approx(difference)


def test_pretrained_vs_scratch_is_fig6_for_the_classifiers_that_differ_only(tmp_path):
    runs = []
    for name, pretrained in (("scratch", False), ("pretrained", True)):
        def edit(config, pretrained=pretrained):
            config["classifiers"] = [{"arch": "lenet"}, {"arch": "vgg19", "pretrained": pretrained}]
        runs += [load_run(make_run(tmp_path / name / f"seed_{s}", s, config_edit=edit, planned=2)) for s in SEEDS]
    found = comparisons(group_runs(runs))
    fig6 = [c for c in found if c.figure.startswith("Fig. 6")]
    assert [c.subject for c in fig6] == ["colored_mnist / vgg19: pretrained (pretrained) vs scratch (scratch)"] * 2
    assert not any("lenet" in c.subject for c in found if c.between_groups)  # pretrained in neither group
    accuracy = next(c for c in fig6 if "accuracy" in c.quantity)
    assert accuracy.estimate == pytest.approx(0.0, abs=1e-9)  # the fake rows' accuracy slopes are equal


def test_fig9_correlation_is_the_fisher_z_mean_over_seeds(tmp_path):
    rng = np.random.default_rng(3)
    noise = 0.01 * rng.standard_normal((len(SEEDS), len(GENERATIONS)))
    runs = []
    for s in SEEDS:
        rows = [{**make_row(s, g, "lenet", "hard_imagenet"), "classifier": "resnet50",
                 "acc": 0.8 - 0.01 * g + noise[s, g]} for g in GENERATIONS]
        runs.append(load_run(make_run(tmp_path / "hin" / f"seed_{s}", s, dataset="hard_imagenet", rows=rows,
                                      classifiers=("resnet50",), planned=4)))
    (group,) = group_runs(runs)
    (found,) = accuracy_correlation(group)
    r = np.array([np.corrcoef(np.arange(5), 0.8 - 0.01 * np.arange(5) + noise[s])[0, 1] for s in SEEDS])
    mean, low, high = (math.tanh(v) for v in t_interval_by_hand(np.arctanh(r)))
    assert (found.estimate, found.low, found.high) == pytest.approx((mean, low, high))
    assert found.figure == "Fig. 9, accuracy vs generation" and found.estimate < -0.5
    assert any(c.figure.startswith("Fig. 9") for c in comparisons([group]))


def test_worst_vs_best_needs_subgroups(tmp_path):
    rows = [{**make_row(s, g, "lenet", "colored_mnist"), "acc_rank": []} for s in (0,) for g in GENERATIONS]
    (group,) = group_runs([load_run(make_run(tmp_path / "run", 0, rows=rows, classifiers=("lenet",), planned=4))])
    assert worst_vs_best(group) == []
