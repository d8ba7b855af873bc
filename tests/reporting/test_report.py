"""report_main over synthetic run directories with known values: 3 seeds, generations 0-2, 2 classifiers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from common.errors import ConfigError
from reporting.report import report_main

SEEDS = (0, 1, 2)
GENERATIONS = (0, 1, 2)
CLASSIFIERS = ("lenet", "vgg19")
BASE_BIAS = {0: 0.10, 1: 0.12, 2: 0.14}  # 1 - MEO at generation 0, per seed
GROWTH = {"lenet": 2.0, "vgg19": 0.5}  # B_{t+1} = GROWTH * B_t for every seed: A_t is exact


def acc_value(seed: int, generation: int, classifier: str) -> float:
    return 0.5 + 0.1 * seed + 0.01 * generation + (0.2 if classifier == "vgg19" else 0.0)


def make_row(seed: int, generation: int, classifier: str, dataset: str) -> dict:
    bias = BASE_BIAS[seed] * GROWTH[classifier] ** generation
    ranks = [0.5 + 0.01 * seed, 0.7 + 0.01 * seed, 0.9 + 0.01 * seed]  # gap 0.4 at every generation: A_t = 1
    return {
        "generation": generation, "classifier": classifier, "arch": classifier, "seed": seed, "dataset": dataset,
        "synthetic_share": 0.5, "acc": acc_value(seed, generation, classifier), "meo": 1.0 - bias,
        "di": 0.9, "md": 0.05 * (seed + 1), "meo_class": 0.95 - 0.01 * seed, "di_class": 0.8, "md_class": 0.1,
        "acc_rank": ranks, "group_acc": [[0.5, 0.7, 0.9]], "n_real": 100, "n_synthetic": 50 * (generation > 0),
        "stack_size": 0, "stack_generations": [], "epochs": 1, "wall_s": 1.0, "fid": None,
        "ablation_acc": {"mask": 0.4 + 0.1 * seed, "box": 0.3}, "ablation_drop": {"mask": 0.1, "box": 0.2},
        "quality_q": None, "imbalance_u": None,
    }


def make_run(path: Path, seed: int, *, dataset: str = "colored_mnist", share: float = 0.5,
             samples: bool = True, write_results: bool = True) -> Path:
    path.mkdir(parents=True)
    config = {"seed_everything": seed, "data": {"synthetic_share": share, "source": {"name": dataset}},
              "loop": {"run_dir": str(path), "generations": 2}, "classifiers": [{"arch": c} for c in CLASSIFIERS]}
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [make_row(seed, g, c, dataset) for g in GENERATIONS for c in CLASSIFIERS]
    if write_results:
        (path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    blocks = {str(g): {"fid": 100.0 + 10 * g + seed, "fid_kept": 90.0 + 10 * g + seed, "filter_kept": 50,
                       "filter_dropped": 0, "quality_q": 0.9, "imbalance_u": 0.1} for g in GENERATIONS[1:]}
    (path / "state.json").write_text(json.dumps({"version": 1, "completed": [], "results": rows, "blocks": blocks}))
    if samples:
        for g in GENERATIONS[1:]:
            (path / f"gen_{g:02d}").mkdir()
            Image.fromarray(np.full((20, 30 + g, 3), 40 * g, dtype=np.uint8)).save(path / f"gen_{g:02d}/samples.png")
    return path


def three_seeds(root: Path, name: str = "mnist_biased", **kw) -> list[Path]:
    return [make_run(root / name / f"seed_{s}", s, **kw) for s in SEEDS]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_report_reproduces_means_stds_and_amplification(tmp_path):
    runs = three_seeds(tmp_path / "runs")
    out = tmp_path / "report"
    report_main([str(p) for p in runs], str(out))

    stats = {(r["group"], r["classifier"], int(r["generation"]), r["metric"]): r
             for r in read_csv(out / "aggregate.csv")}
    for classifier in CLASSIFIERS:
        for g in GENERATIONS:
            cell = stats[("mnist_biased", classifier, g, "acc")]
            expected = [acc_value(s, g, classifier) for s in SEEDS]
            assert float(cell["mean"]) == pytest.approx(np.mean(expected))
            assert float(cell["std_ddof1"]) == pytest.approx(np.std(expected, ddof=1))  # = 0.1
            assert int(cell["n"]) == 3
    md = stats[("mnist_biased", "lenet", 0, "md")]
    assert float(md["mean"]) == pytest.approx(0.1) and float(md["std_ddof1"]) == pytest.approx(0.05)
    assert float(stats[("mnist_biased", "lenet", 1, "acc_rank_1")]["mean"]) == pytest.approx(0.51)
    assert float(stats[("mnist_biased", "vgg19", 2, "ablation_acc.mask")]["mean"]) == pytest.approx(0.5)

    summary = (out / "summary.md").read_text()
    assert "ddof=1" in summary
    assert "| 1 | 0.6100 ± 0.1000 |" in summary  # lenet, generation 1, accuracy
    assert "rank 1 (worst)" in summary and "Hard ImageNet ablations" in summary
    assert "## Generator FID per generation (Table 1 layout)" in summary
    assert "| mnist_biased | colored_mnist | raw block | 111.0000 ± 1.0000 | 121.0000 ± 1.0000 | 3 |" in summary
    assert "| mnist_biased | colored_mnist | kept | 101.0000 ± 1.0000 | 111.0000 ± 1.0000 | 3 |" in summary
    assert "## Bias amplification (section 5 conjecture)" in summary
    assert "bootstrap over seeds only" in summary

    conj = read_csv(out / "conjecture.csv")
    transitions = {(r["classifier"], r["measure"], int(r["t"])): r for r in conj if r["record"] == "transition"}
    fits = {(r["classifier"], r["measure"]): r for r in conj if r["record"] == "fit"}
    for t in (0, 1):
        assert float(transitions[("lenet", "1-meo", t)]["a_t"]) == pytest.approx(2.0)
        assert float(transitions[("vgg19", "1-meo", t)]["a_t"]) == pytest.approx(0.5)
        assert float(transitions[("lenet", "gap", t)]["a_t"]) == pytest.approx(1.0)
    assert float(transitions[("lenet", "1-meo", 0)]["b_t"]) == pytest.approx(0.12)
    assert fits[("lenet", "1-meo")]["verdict"] == "bias amplified"
    assert fits[("vgg19", "1-meo")]["verdict"] == "bias reduced"
    assert fits[("lenet", "gap")]["verdict"] == "stable"
    assert float(fits[("lenet", "1-meo")]["geo_mean_a"]) == pytest.approx(2.0)
    assert "**lenet** (`1-meo`): bias amplified" in summary

    rows = read_csv(out / "results.csv")
    assert len(rows) == len(SEEDS) * len(GENERATIONS) * len(CLASSIFIERS)
    assert {r["group"] for r in rows} == {"mnist_biased"}
    assert json.loads(rows[0]["acc_rank"]) == [0.5, 0.7, 0.9]
    assert json.loads(rows[0]["ablation_acc"]) == {"mask": 0.4, "box": 0.3}
    assert rows[0]["run_dir"] == str(runs[0])


def test_every_figure_is_a_nonempty_png(tmp_path):
    three_seeds(tmp_path / "runs")
    out = tmp_path / "report"
    report_main([str(tmp_path / "runs" / "*" / "seed_*")], str(out))
    names = sorted(p.name for p in (out / "figures").iterdir())
    assert names == ["fid.png", "mnist_biased__ablation.png", "mnist_biased__metrics.png",
                     "mnist_biased__metrics_per_class.png", "mnist_biased__ranked_subgroups.png",
                     "mnist_biased__samples_seed0.png"]
    for name in names:
        data = (out / "figures" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(out / "figures" / name) as image:
            image.verify()
    with Image.open(out / "figures" / "mnist_biased__samples_seed0.png") as stacked:
        assert stacked.height == 20 + 4 + 20  # two generation sheets, top to bottom, 4 px apart
    summary = (out / "summary.md").read_text()
    assert all(f"(figures/{n})" in summary for n in names)


def test_glob_expansion_and_seed_grouping_across_groups(tmp_path):
    three_seeds(tmp_path / "runs", "unbiased", share=0.5)
    three_seeds(tmp_path / "runs", "unbiased_p0", share=0.0)
    out = tmp_path / "report"
    report_main([str(tmp_path / "runs" / "*" / "seed_*"), str(tmp_path / "runs" / "unbiased" / "seed_0")], str(out))
    rows = read_csv(out / "results.csv")
    assert {r["group"] for r in rows} == {"unbiased", "unbiased_p0"}
    assert len(rows) == 2 * len(SEEDS) * len(GENERATIONS) * len(CLASSIFIERS)  # the repeated path counted once
    summary = (out / "summary.md").read_text()
    assert "Differs from the other groups in: `data.synthetic_share=0.0`" in summary
    with pytest.raises(ConfigError, match="matches no directory"):
        report_main([str(tmp_path / "nothing" / "seed_*")], str(out))


def test_groups_without_seed_folders_are_named_by_their_differing_keys(tmp_path):
    make_run(tmp_path / "a", 0, share=0.5)
    make_run(tmp_path / "b", 1, share=0.5)
    make_run(tmp_path / "c", 0, share=0.25)
    report_main([str(tmp_path / x) for x in "abc"], str(tmp_path / "report"))
    stats = read_csv(tmp_path / "report" / "aggregate.csv")
    n_by_group = {r["group"]: int(r["n"]) for r in stats if r["metric"] == "acc"}
    assert n_by_group == {"colored_mnist[synthetic_share=0.5]": 2, "colored_mnist[synthetic_share=0.25]": 1}


def test_incomparable_or_broken_runs_are_refused(tmp_path):
    good = make_run(tmp_path / "exp" / "seed_0", 0)
    unfinished = make_run(tmp_path / "exp" / "seed_1", 1, write_results=False)
    with pytest.raises(ConfigError, match=f"{unfinished} has no results.jsonl"):
        report_main([str(good), str(unfinished)], str(tmp_path / "report"))
    assert not (tmp_path / "report").exists()  # refused before writing anything

    copy = make_run(tmp_path / "copy" / "seed_0", 0)  # same config (but run_dir), same seed
    with pytest.raises(ConfigError, match="same seed 0"):
        report_main([str(good), str(copy)], str(tmp_path / "report"))

    other = make_run(tmp_path / "other" / "seed_1", 1)
    rows = [json.loads(line) for line in (other / "results.jsonl").read_text().splitlines()]
    (other / "results.jsonl").write_text("".join(json.dumps({**r, "dataset": "cifar20"}) + "\n" for r in rows))
    with pytest.raises(ConfigError, match="different datasets"):
        report_main([str(good), str(other)], str(tmp_path / "report"))

    with pytest.raises(ConfigError, match="holds 1 run directories below it"):
        report_main([str(tmp_path / "copy")], str(tmp_path / "report"))


def test_cifar20_shows_per_class_metrics_first(tmp_path):
    runs = three_seeds(tmp_path / "runs", "cifar", dataset="cifar20")
    report_main([str(p) for p in runs], str(tmp_path / "report"))
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "For CIFAR-20/100 the per-class metrics are the meaningful ones" in summary
    assert summary.index("Per-class fairness metrics") < summary.index("subgroups pooled over classes")
    assert "| 0 | 0.6000 ± 0.1000 | 0.9400 ± 0.0100 |" in summary  # lenet gen 0: acc, MEO per class
    conj = read_csv(tmp_path / "report" / "conjecture.csv")
    assert {r["measure"] for r in conj} == {"1-meo_class", "gap"}
