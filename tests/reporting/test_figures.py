"""The report's figures: labelled axes, how many seeds they show, the FID's features, and the overview that puts
pooled next to per-class fairness (values read back from the drawn lines); paper-ready: fixed ranges for bounded
measures, a minimum span for others, no offset labels, integer generation ticks, "n/a" panels, PNG at 200 dpi and
PDF/SVG copies, legends that name every setting that differs; the sandbox figure included."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from common.errors import ConfigError
from reporting.figures import (
    MAX_COLS,
    MIN_SPAN_FRACTION,
    PNG_DPI,
    parse_formats,
    plot_ablation,
    plot_comparison,
    plot_fid,
    plot_metrics,
    plot_overview,
    plot_ranked,
    setting_labels,
)
from reporting.runs import group_runs, load_run
from reporting.statistics import aggregate, fid_by_generation
from sandbox.report import plot_known_answers
from sandbox.sweep import load_config, run_sandbox
from tests.fakes.run_dirs import GENERATIONS, make_row, make_run, three_seeds

ROOT = Path(__file__).resolve().parents[2]
TINY_SANDBOX = ROOT / "tests" / "configs" / "sandbox" / "tiny.yaml"


@pytest.fixture(scope="module")
def sandbox_groups(tmp_path_factory):
    """The tiny sandbox sweep's groups (3 seeds x 3 generations of a Gaussian and a mixture regime), as run by
    ``cli.py sandbox``."""
    out = tmp_path_factory.mktemp("sandbox")
    run_sandbox(load_config(str(TINY_SANDBOX), str(out), None))
    return group_runs([load_run(p) for p in sorted(out.glob("*/seed_*"))])


def load_groups(paths):
    groups = group_runs([load_run(p) for p in paths])
    return groups, {g.name: aggregate(g) for g in groups}


def visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


@pytest.mark.parametrize("n_seeds", [1, 3])
def test_every_panel_has_axis_labels_and_the_title_says_how_many_seeds(tmp_path, n_seeds):
    paths = three_seeds(tmp_path / "runs")[:n_seeds]
    (group,), stats = load_groups(paths)
    written = []
    figures = [plot_metrics(group, stats[group.name], ["acc", "meo", "di", "md"], tmp_path / "m.png", written),
               plot_ranked(group, stats[group.name], 3, tmp_path / "r.png", written),
               plot_overview(group, stats[group.name], tmp_path / "o.png", written)]
    for fig in figures:
        for ax in visible_axes(fig):
            assert ax.get_xlabel() == "generation" and ax.get_ylabel(), ax.get_title()
        title = fig.get_suptitle()
        assert ("1 seed (no spread" in title) if n_seeds == 1 else ("mean ± std over 3 seeds" in title)
    assert [ax.get_ylabel() for ax in visible_axes(figures[0])] == [
        "accuracy", "MEO (1 = equal subgroup TPRs)", "DI (1 = no disparity)", "MD (max - min subgroup TPR)"]
    assert len(written) == 3


def test_overview_draws_pooled_solid_and_per_class_dashed_with_their_values(tmp_path):
    (group,), stats = load_groups(three_seeds(tmp_path / "runs"))
    fig = plot_overview(group, stats[group.name], tmp_path / "o.png", [])
    meo = next(ax for ax in visible_axes(fig) if ax.get_title().startswith("MEO"))
    lines = {line.get_label(): line for line in meo.get_lines()}
    pooled, per_class = lines["lenet, pooled"], lines["lenet, per class"]
    assert pooled.get_linestyle() == "-" and per_class.get_linestyle() == "--"
    assert pooled.get_color() == per_class.get_color() != lines["vgg19, pooled"].get_color()
    expected_pooled = [np.mean([make_row(s, g, "lenet", "x")["meo"] for s in (0, 1, 2)]) for g in GENERATIONS]
    assert np.allclose(pooled.get_ydata(), expected_pooled)
    assert np.allclose(per_class.get_ydata(), [0.94] * 3)  # mean of 0.95, 0.94, 0.93
    accuracy = next(ax for ax in visible_axes(fig) if ax.get_title().startswith("accuracy"))
    worst = next(line for line in accuracy.get_lines() if line.get_label() == "lenet, worst subgroup")
    assert np.allclose(worst.get_ydata(), [0.51] * 3)


def test_unfinished_runs_are_named_in_the_title(tmp_path):
    rows = [make_row(1, g, c, "colored_mnist") for g in (0, 1) for c in ("lenet", "vgg19")]
    paths = [make_run(tmp_path / "exp" / "seed_0", 0), make_run(tmp_path / "exp" / "seed_1", 1, rows=rows)]
    (group,), stats = load_groups(paths)
    fig = plot_metrics(group, stats[group.name], ["acc"], tmp_path / "m.png", [])
    assert fig.get_suptitle().endswith("mean ± std over 2 seeds; 1 of 2 runs unfinished")


def test_fid_figure_names_its_features(tmp_path):
    groups, _ = load_groups(three_seeds(tmp_path / "runs"))
    fids = {g.name: fid_by_generation(g) for g in groups}
    fig = plot_fid(groups, fids, tmp_path / "fid.png", [])
    (ax,) = visible_axes(fig)
    assert "features: classifier features (lenet), not Inception: not comparable to the paper's Table 1" \
        in ax.get_title()
    assert ax.get_ylabel() == "FID (lower = closer to the real training images)"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["mnist_biased (3 seeds), raw block",
                                                                   "mnist_biased (3 seeds), kept"]
    raw, kept = ax.get_lines()
    assert np.allclose(raw.get_ydata(), [111.0, 121.0])  # 100 + 10 g + seed, averaged over seeds 0-2
    assert np.allclose(kept.get_ydata(), [101.0, 111.0])  # 90 + 10 g + seed


def test_ranked_figure_shows_worst_best_and_the_mean_over_subgroups(tmp_path):
    """Figure 7: per classifier, every subgroup rank and the mean over subgroups (dashed), values read back."""
    (group,), stats = load_groups(three_seeds(tmp_path / "runs"))
    fig = plot_ranked(group, stats[group.name], 3, tmp_path / "r.png", [])
    lenet = next(ax for ax in visible_axes(fig) if ax.get_title().startswith("lenet"))
    lines = {line.get_label(): line for line in lenet.get_lines()}
    assert list(lines) == ["rank 1 (worst)", "rank 2", "rank 3 (best)", "mean over subgroups"]
    # ranks 0.5 / 0.7 / 0.9 + 0.01 seed, averaged over seeds 0-2: 0.51, 0.71, 0.91; their mean 0.71
    for label, value in [("rank 1 (worst)", 0.51), ("rank 3 (best)", 0.91), ("mean over subgroups", 0.71)]:
        assert np.allclose(lines[label].get_ydata(), [value] * len(GENERATIONS)), label
    assert lines["mean over subgroups"].get_linestyle() == "--"


def test_comparison_figure_puts_the_groups_of_a_dataset_side_by_side(tmp_path):
    """A sweep (regimes, a mitigation on and off): one line per group in every panel, values read back."""
    paths = [*three_seeds(tmp_path / "fifo"), *three_seeds(tmp_path / "replace", share=0.25)]
    groups, stats = load_groups(paths)
    fig = plot_comparison(groups, stats, tmp_path / "c.png", [])
    titles = [ax.get_title() for ax in visible_axes(fig)]
    # a row of panels per classifier; no u_t panel: these rows carry no imbalance_u
    assert titles == [f"{c}: {m}" for c in ("lenet", "vgg19")
                      for m in ("accuracy", "MD (pooled)", "worst-subgroup accuracy", "best-subgroup accuracy")]
    md = next(ax for ax in visible_axes(fig) if ax.get_title() == "lenet: MD (pooled)")
    # each group labelled by the one setting that tells them apart, not by its whole folder name
    assert len(md.get_lines()) == 2 and {line.get_label() for line in md.get_lines()} == {
        "synthetic_share=0.5 (3 seeds)", "synthetic_share=0.25 (3 seeds)"}
    for line in md.get_lines():
        assert np.allclose(line.get_ydata(), [0.1] * len(GENERATIONS))  # 0.05 (seed + 1), averaged over seeds 0-2
    best = next(ax for ax in visible_axes(fig) if ax.get_title() == "lenet: best-subgroup accuracy")
    assert np.allclose(best.get_lines()[0].get_ydata(), [0.91] * len(GENERATIONS))
    assert "2 groups compared" in fig.get_suptitle()


def layout_problems(fig) -> list[str]:
    """What makes a drawn figure hard to read: a legend over any panel (its tight box: ticks, labels, title), more
    than MAX_COLS panels a row, a legend past the figure's edge, or an aspect ratio outside 0.6-3.5 (3 panels of 4:3
    in a row is 3.4; the strip of 5 this replaced was 6)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = visible_axes(fig)
    legends = [*fig.legends, *(ax.get_legend() for ax in axes if ax.get_legend() is not None)]
    problems = [f"legend over {ax.get_title()!r}" for legend in legends for ax in axes
                if legend.get_window_extent(renderer).overlaps(ax.get_tightbbox(renderer))]
    rows: dict[float, int] = {}
    for ax in axes:
        top = round(ax.get_position().y1, 3)
        rows[top] = rows.get(top, 0) + 1
    problems += [f"{n} panels in a row" for n in rows.values() if n > MAX_COLS]
    page = fig.bbox
    problems += ["legend beyond the figure's edge" for legend in legends
                 if legend.get_window_extent(renderer).x0 < page.x0 - 1 or legend.get_window_extent(renderer).x1 >
                 page.x1 + 1]
    width, height = fig.get_size_inches()
    if not 0.6 <= width / height <= 3.5:
        problems.append(f"aspect ratio {width / height:.2f}")
    return problems


def test_no_legend_covers_a_panel_and_every_figure_keeps_a_readable_shape(tmp_path, sandbox_groups):
    paths = [*three_seeds(tmp_path / "fifo"), *three_seeds(tmp_path / "replace", share=0.25)]
    groups, stats = load_groups(paths)
    group = groups[0]
    figures = {"metrics": plot_metrics(group, stats[group.name], ["acc", "meo", "di", "md", "meo_class"],
                                       tmp_path / "m.png", []),
               "ranked": plot_ranked(group, stats[group.name], 3, tmp_path / "r.png", []),
               "overview": plot_overview(group, stats[group.name], tmp_path / "o.png", []),
               "comparison": plot_comparison(groups, stats, tmp_path / "c.png", []),
               "ablation": plot_ablation(group, stats[group.name], ["a", "b", "c"], tmp_path / "a.png", []),
               "fid": plot_fid(groups, {g.name: fid_by_generation(g) for g in groups}, tmp_path / "f.png", []),
               "sandbox": plot_known_answers(sandbox_groups, tmp_path / "s.png", [])}
    for name, fig in figures.items():
        assert layout_problems(fig) == [], name
        assert fig.legends and all(ax.get_legend() is None for ax in visible_axes(fig)), name  # one, outside


def test_the_layout_check_sees_a_legend_over_a_panel_and_a_strip_of_panels(tmp_path):
    """The check above must fail on the figure it was written against: one row of 5 panels, legend inside."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(18, 3), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 5)
    for ax in axes:
        ax.plot([0, 1], [0, 1], label="a long group name [synthetic_share=0.5, stack_policy=fifo]")
    axes[0].legend()
    problems = layout_problems(fig)
    assert "legend over ''" in problems and "5 panels in a row" in problems and "aspect ratio 6.00" in problems


def test_group_labels_keep_only_the_settings_that_differ(tmp_path):
    paths = [*three_seeds(tmp_path / "fifo"), *three_seeds(tmp_path / "replace", share=0.25)]
    groups, _ = load_groups(paths)
    assert sorted(setting_labels(groups).values()) == ["synthetic_share=0.25", "synthetic_share=0.5"]
    assert setting_labels(groups[:1]) == {groups[0].name: groups[0].name}  # nothing to tell apart: the name


def test_every_setting_that_differs_labels_the_groups():
    from reporting.runs import Group

    def group(name, **differing):
        return Group(key=name, runs=[], name=name, differing={k: f'"{v}"' for k, v in differing.items()})

    # the sandbox's regimes: a unique name beside the settings it stands for: all of them are named (a reader of the
    # legend should not have to know that "mixture_real" means p = 0.5)
    groups = [group("a", **{"sandbox.name": "gaussian_replace", "regime.generator": "gaussian", "data.p": "1.0"}),
              group("b", **{"sandbox.name": "mixture_replace", "regime.generator": "mixture", "data.p": "1.0"}),
              group("c", **{"sandbox.name": "mixture_real", "regime.generator": "mixture", "data.p": "0.5"})]
    assert setting_labels(groups) == {"a": "p=1.0, generator=gaussian, name=gaussian_replace",
                                      "b": "p=1.0, generator=mixture, name=mixture_replace",
                                      "c": "p=0.5, generator=mixture, name=mixture_real"}
    # compared among themselves, a and b differ in two settings only: p is not named
    assert setting_labels(groups[:2])["a"] == "generator=gaussian, name=gaussian_replace"
    grid = [group(f"{p}{s}", **{"data.stack_policy": p, "data.synthetic_share": s})
            for p in ("fifo", "replace") for s in ("0.25", "0.5")]
    assert setting_labels(grid)["fifo0.25"] == "stack_policy=fifo, synthetic_share=0.25"
    # two differing keys that end alike keep their whole key
    clash = [group(f"g{k}", **{"data.p": str(k), "sandbox.regime.p": str(k + 1)}) for k in (1, 2)]
    assert setting_labels(clash)["g1"] == "data.p=1, sandbox.regime.p=2"


def test_a_comparison_legend_names_all_four_settings_that_differ(tmp_path):
    """The issue's case: groups differing in four settings, each labelled by all four (not by the one setting that
    would tell them apart)."""
    paths = []
    for k, (policy, share, stack, epochs) in enumerate([("fifo", 0.5, 3, 1), ("replace", 0.25, 1, 2)]):
        for seed in (0, 1):
            path = make_run(tmp_path / f"regime{k}" / f"seed_{seed}", seed, share=share)
            config = yaml.safe_load((path / "config.yaml").read_text())
            config["data"]["regime"].update(policy=policy, window=stack)
            config["loop"].update(generator_epochs=epochs)
            (path / "config.yaml").write_text(yaml.safe_dump(config))
            paths.append(path)
    groups, stats = load_groups(paths)
    fig = plot_comparison(groups, stats, tmp_path / "c.png", [])
    assert sorted(text.get_text() for text in fig.legends[0].get_texts()) == [
        "policy=fifo, synthetic_share=0.5, window=3, generator_epochs=1 (2 seeds)",
        "policy=replace, synthetic_share=0.25, window=1, generator_epochs=2 (2 seeds)"]


def test_a_long_legend_wraps_into_the_figure(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from reporting.figures import legend_below

    fig = Figure(figsize=(8, 4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    for k, ax in enumerate(axes):
        ax.plot([0, 1], [0, k], label=f"generator=mixture, name=regime_{k}, stack_policy=replace, synthetic_share=1.0")
    legend_below(fig, axes, max_cols=4)
    assert layout_problems(fig) == []


def all_figures(tmp_path, sandbox_groups) -> dict:
    paths = [*three_seeds(tmp_path / "fifo"), *three_seeds(tmp_path / "replace", share=0.25)]
    groups, stats = load_groups(paths)
    group = groups[0]
    return {"metrics": plot_metrics(group, stats[group.name], ["acc", "meo", "di", "md", "meo_eq2"],
                                    tmp_path / "m.png", []),
            "ranked": plot_ranked(group, stats[group.name], 3, tmp_path / "r.png", []),
            "overview": plot_overview(group, stats[group.name], tmp_path / "o.png", []),
            "comparison": plot_comparison(groups, stats, tmp_path / "c.png", []),
            "ablation": plot_ablation(group, stats[group.name], ["mask", "box"], tmp_path / "a.png", []),
            "fid": plot_fid(groups, {g.name: fid_by_generation(g) for g in groups}, tmp_path / "f.png", []),
            "sandbox": plot_known_answers(sandbox_groups, tmp_path / "s.png", [])}


def test_generations_are_integer_ticks_and_no_tick_label_carries_an_offset(tmp_path, sandbox_groups):
    """Every panel of every figure (the sandbox's too): ticks at whole generations only, and the y tick labels are
    plain numbers (no ``1e-8+5.11409e-2`` offset, no scientific factor)."""
    for name, fig in all_figures(tmp_path, sandbox_groups).items():
        fig.canvas.draw()
        for ax in visible_axes(fig):
            ticks = ax.get_xticks()
            assert len(ticks) and np.array_equal(ticks, np.round(ticks)), (name, ax.get_title(), ticks)
            assert ax.yaxis.get_offset_text().get_text() == "", (name, ax.get_title())
            for label in ax.get_yticklabels():
                float(label.get_text().replace("\N{MINUS SIGN}", "-"))  # a plain number


def test_bounded_measures_use_their_fixed_range(tmp_path, sandbox_groups):
    figures = all_figures(tmp_path, sandbox_groups)
    limits = {ax.get_title(): ax.get_ylim() for ax in visible_axes(figures["metrics"])}
    assert limits["accuracy"] == limits["MEO"] == limits["DI"] == limits["MD"] == (0.0, 1.0)
    assert limits["MEO eq. 2 as printed"] == (-1.0, 1.0)  # 1 - 2 x the mean gap
    (fid,) = visible_axes(figures["fid"])  # no fixed range: the data's (100-122 here), wider than a fifth of it
    assert fid.get_ylim()[0] <= 100 and fid.get_ylim()[1] >= 122 and fid.get_ylim()[1] < 200
    for name in ("ranked", "overview", "comparison", "ablation"):
        for ax in visible_axes(figures[name]):
            assert ax.get_ylim() == (0.0, 1.0), (name, ax.get_title())
    sandbox = {ax.get_title(): ax.get_ylim() for ax in visible_axes(figures["sandbox"])}
    assert sandbox["mixture: minority share, mean over seeds"] == (0.0, 1.0)


def test_a_nearly_constant_measure_spans_a_fifth_of_its_magnitude_around_its_value():
    """The issue's FID: 51.140940 and 51.140941 drawn on an auto-scaled axis fill the panel with a 1e-6 'cliff' and an
    offset label; here they sit in the middle of 51.14 ± 5.11 with plain tick labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from reporting.figures import scale_y

    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot([1, 2], [51.140940, 51.140941])
    scale_y(ax, None)
    low, high = ax.get_ylim()
    assert (low + high) / 2 == pytest.approx(51.1409405, abs=1e-6)
    assert high - low == pytest.approx(MIN_SPAN_FRACTION * 51.140941, rel=1e-4)  # 0.2 x the largest magnitude
    assert high - low == pytest.approx(10.2282, rel=1e-3)
    fig.canvas.draw()
    assert ax.yaxis.get_offset_text().get_text() == ""
    wide = Figure().subplots()
    wide.plot([0, 1], [10.0, 60.0])
    scale_y(wide, None)
    assert wide.get_ylim()[0] <= 10.0 and wide.get_ylim()[1] >= 60.0  # a wide range is left as the data draw it
    assert wide.get_ylim()[1] - wide.get_ylim()[0] < 60.0


def test_a_panel_without_data_says_n_a_and_why(tmp_path, sandbox_groups):
    (group,), stats = load_groups(three_seeds(tmp_path / "runs"))
    fig = plot_ablation(group, stats[group.name], ["mask", "occlusion"], tmp_path / "a.png", [])
    panels = {ax.get_title(): ax for ax in visible_axes(fig)}
    empty, drawn = panels["accuracy, occlusion"], panels["accuracy, mask"]
    assert not empty.get_lines() and [t.get_text() for t in empty.texts] == ["n/a\nnot recorded by these runs"]
    assert empty.get_xlabel() == "generation" and empty.get_ylabel() == "accuracy"  # still labelled
    assert drawn.get_lines() and not drawn.texts
    gaussian_only = [g for g in sandbox_groups if g.name == "gaussian_replace"]
    fig = plot_known_answers(gaussian_only, tmp_path / "s.png", [])
    texts = {ax.get_title(): [t.get_text() for t in ax.texts] for ax in visible_axes(fig)}
    assert texts["mixture: minority share, mean over seeds"] == [
        "n/a\nno run with the mixture generator among these"]
    assert texts["ML Gaussian: variance collapse"] == []
    # the mixture's variance across seeds has no closed form under fifo with 3 blocks: measured alone, and said so
    fig = plot_known_answers(sandbox_groups, tmp_path / "s.png", [])
    variance = next(ax for ax in visible_axes(fig) if ax.get_title().endswith("variance over seeds"))
    assert len(variance.get_lines()) == 1
    assert [t.get_text() for t in variance.texts] == ["no closed form for these regimes: measured only"]


def test_figures_are_written_in_every_format_asked_png_at_200_dpi(tmp_path):
    from PIL import Image

    (group,), stats = load_groups(three_seeds(tmp_path / "runs"))
    written = []
    fig = plot_metrics(group, stats[group.name], ["acc", "meo"], tmp_path / "m.png", written,
                       formats=("png", "pdf", "svg"))
    assert written == [tmp_path / "m.png", tmp_path / "m.pdf", tmp_path / "m.svg"]
    assert PNG_DPI >= 200
    with Image.open(tmp_path / "m.png") as png:
        assert png.info["dpi"] == pytest.approx((PNG_DPI, PNG_DPI), abs=0.01)
        assert png.width == round(fig.get_figwidth() * PNG_DPI)
    assert (tmp_path / "m.pdf").read_bytes()[:5] == b"%PDF-"
    svg = (tmp_path / "m.svg").read_text()
    assert "<svg" in svg and "<image" not in svg  # vector: the curves are paths, not an embedded raster


def test_formats_are_parsed_once_each_and_an_unknown_one_is_named():
    assert parse_formats("png, PDF,svg,pdf") == ("png", "pdf", "svg")
    assert parse_formats(".svg") == ("svg",)
    with pytest.raises(ConfigError, match=r"--formats 'png,tiff': unknown format tiff; choose from png, pdf, svg"):
        parse_formats("png,tiff")
    with pytest.raises(ConfigError, match="no format"):
        parse_formats(" , ")


def test_an_infinite_mean_is_named_on_its_panel_not_left_as_a_silent_gap():
    """DI eq. 3 as printed is -inf where a zero rate meets a positive one: a point matplotlib cannot draw. The panel
    names its generations; with no finite point left it says n/a, and why."""
    from matplotlib.figure import Figure

    from reporting.figures import INFINITE_NOTE, _curve, finish_axes

    stats = {("lenet", 0, "di_eq3"): (0.5, 0.1, 3), ("lenet", 1, "di_eq3"): (-math.inf, math.nan, 3),
             ("lenet", 2, "di_eq3"): (0.4, 0.1, 3)}
    ax = Figure().add_subplot()
    assert _curve(ax, stats, "lenet", "di_eq3", [0, 1, 2], "lenet")
    assert [t.get_text() for t in ax.texts] == [f"lenet: {INFINITE_NOTE} 1"]
    assert list(ax.lines[0].get_xdata()) == [0, 2]  # the finite generations only
    only_infinite = {key: (-math.inf, math.nan, 3) for key in stats}
    ax = Figure().add_subplot()
    drawn = _curve(ax, only_infinite, "lenet", "di_eq3", [0, 1, 2], "lenet")
    finish_axes(ax, "DI eq. 3", "DI", [0, 1, 2], "di_eq3", drawn=drawn)
    assert not drawn and any("n/a\nno finite value to draw" == t.get_text() for t in ax.texts)
