"""report_main over synthetic run directories with known values: 3 seeds, generations 0-2, 2 classifiers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.errors import ConfigError
from reporting.figures import SHEET_LABEL_FONT_SIZE
from reporting.report import report_main
from tests.fakes.run_dirs import (
    CLASSIFIERS,
    GENERATIONS,
    SEEDS,
    acc_value,
    dataset_card,
    make_row,
    make_run,
    three_seeds,
)


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
    assert "rank 1 (worst)" in summary and "Object-mask ablations" in summary
    assert "## Generator FID per generation (Table 1 layout)" in summary
    features = "classifier features (lenet), not Inception: not comparable to the paper's Table 1"
    assert f"| mnist_biased | colored_mnist | raw block | {features} | 111.0000 ± 1.0000 | 121.0000 ± 1.0000 | 3 |" \
        in summary
    assert f"| mnist_biased | colored_mnist | kept | {features} | 101.0000 ± 1.0000 | 111.0000 ± 1.0000 | 3 |" \
        in summary
    assert "## Bias amplification (section 5 conjecture)" in summary
    assert "95% t intervals on k - 1 degrees of freedom over one number per seed" in summary

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
    assert fits[("lenet", "gap")]["verdict"].startswith("stable")
    assert float(fits[("lenet", "1-meo")]["change_pct_per_generation"]) == pytest.approx(100.0)  # B doubles
    assert float(fits[("vgg19", "1-meo")]["change_pct_per_generation"]) == pytest.approx(-50.0)
    assert float(fits[("lenet", "1-meo")]["endpoint_ratio"]) == pytest.approx(4.0)  # B_2 / B_0 = 2 * 2
    assert fits[("lenet", "1-meo")]["seeds_needed_5pct"] == "2"  # every seed doubles exactly: no spread
    assert ("- **lenet** (`1-meo`): bias amplified: +100.0%/generation, 95% CI [+100.0, +100.0], p < 0.001 "
            "(3 seeds x 3 generations); endpoint ratio B_2/B_0 = 4.0000, 95% CI [4.0000, 4.0000]; seeds needed for "
            "80% power: 5%/generation: 2, 10%/generation: 2") in summary.splitlines()

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
                     "mnist_biased__metrics_cells.png", "mnist_biased__metrics_per_class.png",
                     "mnist_biased__overview.png",
                     "mnist_biased__ranked_subgroups.png", "mnist_biased__samples_seed0.png"]
    for name in names:
        data = (out / "figures" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(out / "figures" / name) as image:
            image.verify()
    with Image.open(out / "figures" / "mnist_biased__samples_seed0.png") as stacked:
        pixels = np.asarray(stacked.convert("L"))
    header = SHEET_LABEL_FONT_SIZE + 10
    assert pixels.shape[0] == (header + 20) + 6 + (header + 20)  # two sheets, each under its header, 6 px apart
    for g, top in zip(GENERATIONS[1:], (0, header + 20 + 6)):  # "generation N" in each header, readable size
        ink_rows = (pixels[top : top + header, :120] < 100).any(axis=1).sum()
        assert ink_rows >= 10
        assert (pixels[top + header : top + header + 20, : 30 + g] == 40 * g).all()  # that generation's sheet
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
    assert "Differs from the other groups in: `data.regime.synthetic_share=0.0`" in summary
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


@pytest.mark.parametrize("dataset, subgroup", [("cifar20", "fine class"), ("breeds_living17", "subclass")])
def test_datasets_with_per_class_subgroups_lead_with_the_cells_reading(tmp_path, dataset, subgroup):
    runs = three_seeds(tmp_path / "runs", "cifar", dataset=dataset,
                       card=dataset_card(dataset, subgroups="per_class", noun=subgroup, fairness_reading="cells"))
    report_main([str(p) for p in runs], str(tmp_path / "report"))
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert f"Classes (1): zero; subgroup = {subgroup} (3: g0, g1, g2)." in summary  # read off the card
    assert (f"Fairness reading for {dataset}: **cells** (cells: every (class, subgroup) cell a group): \"subgroup i\" "
            f"is a different {subgroup} in every class") in summary
    cells = summary.index("Fairness metrics, cells reading")
    assert cells < summary.index("Fairness metrics, pooled reading") < summary.index("Fairness metrics, per_class")
    # the fake rows predate the cells reading: it is computed from group_acc [[.5, .7, .9]]:
    # MEO = 1 - (.2 + .4 + .2)/3 = 0.7333, DI = 1 - ((1 - 5/7) + (1 - 5/9) + (1 - 7/9))/3 = 0.6455, MD = .4,
    # MEO eq. 2 = 1 - 2 * 0.2667 = 0.4667, DI eq. 3 = 1 - (2/5 + 4/5 + 2/7 + 4/9 + 2/9 + 2/9)/3 = 0.2085
    di_cells = 1 - ((1 - 5 / 7) + (1 - 5 / 9) + (1 - 7 / 9)) / 3
    di_eq3 = 1 - ((0.7 / 0.5 - 1) + (1 - 0.5 / 0.7) + (0.9 / 0.5 - 1) + (1 - 0.5 / 0.9) + (0.9 / 0.7 - 1)
                  + (1 - 0.7 / 0.9)) / 3
    assert (f"| 0 | 0.6000 ± 0.1000 | 0.7333 ± 0.0000 | {di_cells:.4f} ± 0.0000 | 0.4000 ± 0.0000 | "
            f"0.4667 ± 0.0000 | {di_eq3:.4f} ± 0.0000 | 3 |") in summary[cells:]  # lenet gen 0
    assert "| 0 | 0.6000 ± 0.1000 | 0.9400 ± 0.0100 |" in summary  # the per-class table, as the rows wrote it
    conj = read_csv(tmp_path / "report" / "conjecture.csv")
    assert {r["measure"] for r in conj} == {"1-meo_cells", "gap"}
    names = sorted(p.name for p in (tmp_path / "report" / "figures").iterdir())
    assert {"cifar__metrics_cells.png", "cifar__metrics.png", "cifar__metrics_per_class.png"} <= set(names)


def test_old_rows_get_the_cells_reading_and_new_rows_keep_theirs(tmp_path):
    # a stored run whose rows lack the new keys (as written before the cells reading), and one row that has them
    rows = [make_row(0, g, "lenet", "colored_mnist") for g in GENERATIONS]
    assert "meo_cells" not in rows[0] and "meo_eq2" not in rows[0]
    rows[2] = {**rows[2], "meo_cells": 0.5, "meo_eq2": 0.25}
    run = make_run(tmp_path / "exp" / "seed_0", 0, rows=rows, classifiers=("lenet",))
    out = tmp_path / "report"
    report_main([str(run)], str(out))
    by_gen = {int(r["generation"]): r for r in read_csv(out / "results.csv")}
    assert float(by_gen[0]["meo_cells"]) == pytest.approx(1 - 0.8 / 3)
    assert float(by_gen[0]["md_cells"]) == pytest.approx(0.4)
    assert float(by_gen[0]["meo_eq2"]) == pytest.approx(2 * rows[0]["meo"] - 1)  # ordered pairs: every gap twice
    assert float(by_gen[0]["meo_class"]) == pytest.approx(rows[0]["meo_class"])  # written values are kept
    assert float(by_gen[2]["meo_cells"]) == 0.5 and float(by_gen[2]["meo_eq2"]) == 0.25
    assert "di_eq3" not in by_gen[0]  # the pooled printed DI needs the counts, which an old row does not keep
    summary = (out / "summary.md").read_text()
    assert "| lenet | lenet | 0.001 | - | 50 (patience 5) | 1.0 | scratch |" in summary  # lr, batch, epochs
    assert "Filter chain: `UncertaintyFilter(r=0.1, quantile, on lenet)`." in summary
    assert "Realised synthetic share of an epoch per generation (mean over seeds): 0: 0.500, 1: 0.500, 2: 0.500." \
        in summary
    assert "Fairness reading for colored_mnist: **pooled**" in summary
    assert summary.index("Fairness metrics, pooled reading") < summary.index("Fairness metrics, cells reading")


def test_an_infinite_di_eq3_is_counted_not_dropped(tmp_path):
    """DI eq. 3 is -inf where a zero rate meets a positive one (stored as null beside a finite DI): dropping the
    seed would lift the mean; the report says -inf and how many seeds were."""
    runs = []
    for s in SEEDS:
        rows = [{**make_row(s, g, "lenet", "colored_mnist"), "di_eq3": None if (s, g) == (1, 2) else 0.5 + 0.1 * s}
                for g in GENERATIONS]
        runs.append(make_run(tmp_path / "runs" / "exp" / f"seed_{s}", s, rows=rows, classifiers=("lenet",)))
    out = tmp_path / "report"
    report_main([str(p) for p in runs], str(out))
    stats = {(int(r["generation"]), r["metric"]): r for r in read_csv(out / "aggregate.csv")}
    assert stats[(2, "di_eq3")]["mean"] == "-inf" and stats[(2, "di_eq3")]["n"] == "3"
    assert float(stats[(2, "di_eq3:infinite_seeds")]["mean"]) == 1.0
    assert float(stats[(1, "di_eq3")]["mean"]) == pytest.approx(0.6)  # no seed infinite: the plain mean
    assert (1, "di_eq3:infinite_seeds") not in stats
    summary = (out / "summary.md").read_text()
    assert "| -inf (1 of 3 seeds) | 3 |" in summary


def test_report_formats_writes_every_plot_as_png_pdf_and_svg_and_refuses_an_unknown_one(tmp_path):
    """``cli.py report --formats pdf,svg`` end to end: each plot in the three formats (PNG always: summary.md links
    it), the stacked sample sheet (a raster image) as PNG only; ``--formats png,eps`` is one line, exit 2, nothing
    written."""
    from tests.in_process import run_cli_here

    three_seeds(tmp_path / "runs")
    out = tmp_path / "report"
    proc = run_cli_here("report", str(tmp_path / "runs" / "*" / "seed_*"), "--out", str(out), "--formats", "pdf,svg")
    assert proc.returncode == 0, proc.stderr
    files = sorted(p.name for p in (out / "figures").iterdir())
    plots = ["fid", "mnist_biased__ablation", "mnist_biased__metrics", "mnist_biased__metrics_cells",
             "mnist_biased__metrics_per_class", "mnist_biased__overview", "mnist_biased__ranked_subgroups"]
    assert files == sorted([*(f"{p}.{ext}" for p in plots for ext in ("png", "pdf", "svg")),
                            "mnist_biased__samples_seed0.png"])
    assert (out / "figures" / "fid.pdf").read_bytes()[:5] == b"%PDF-"
    assert "<svg" in (out / "figures" / "fid.svg").read_text()
    summary = (out / "summary.md").read_text()
    assert "(figures/fid.png)" in summary and ".pdf)" not in summary and ".svg)" not in summary

    refused = tmp_path / "refused"
    proc = run_cli_here("report", str(tmp_path / "runs" / "*" / "seed_*"), "--out", str(refused),
                        "--formats", "png,eps")
    assert proc.returncode == 2 and not refused.exists()
    assert proc.stderr.strip().splitlines() == [
        "error: --formats 'png,eps': unknown format eps; choose from png, pdf, svg, comma-separated "
        "(e.g. --formats png,pdf)"]
