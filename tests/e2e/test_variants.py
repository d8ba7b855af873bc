"""Every variant config (configs/variants/, configs/sweeps/p_sweep.yaml) composes with each paper config it is meant
for: the composed config parses, takes the variant's values, and stops at validation only for the missing data and
weights (nothing else wrong), like the paper config alone (tests/e2e/test_configs.py)."""

from pathlib import Path

import pytest
import yaml

import cli
from scripts.sweep import load_sweep
from tests.e2e.test_configs import EXPECTED_MISSING

ROOT = Path(__file__).resolve().parents[2]
MNIST = ["colored_mnist.yaml", "colored_mnist_biased.yaml", "colored_mnist_ddpm.yaml"]
CIFAR = ["cifar20.yaml", "cifar20_biased.yaml", "cifar20_pretrained.yaml", "cifar20_ddpm.yaml", "cifar20_zhang.yaml",
         "cifar20_zhang_biased.yaml"]
IMAGENET = ["hardimagenet.yaml", "breeds_living17.yaml"]
DCGAN = [c for c in MNIST + CIFAR if "ddpm" not in c]
#: variant -> the paper configs it is meant for, and what the composed config must hold (dotted key -> value)
VARIANTS = {
    "paper_lr.yaml": (MNIST + CIFAR + IMAGENET, {"loop.classifier_lr": 0.1}),
    "generator_continue.yaml": (MNIST + CIFAR + IMAGENET, {"loop.generator_start": "continue"}),
    "plain_dcgan.yaml": (DCGAN, {"model.init_args.class_std_feature": False}),
    "colored_mnist_biased_per_class.yaml": (["colored_mnist_biased.yaml", "colored_mnist_ddpm.yaml"],
                                            {"data.source.init_args.bias": "per_class",
                                             "data.source.init_args.biased": True}),
    "paper_filters_mnist.yaml": (MNIST, {"filters.0.init_args.ratio": 0.1}),
    "paper_filters_cifar.yaml": (CIFAR, {"filters.0.init_args.ratio": 0.3}),
    "paper_filters_imagenet.yaml": (IMAGENET, {"filters.0.init_args.ratio": 0.6}),
}
PAIRS = [(variant, config) for variant, (configs, _) in VARIANTS.items() for config in configs]
def family(config: str) -> str:
    """The dataset and generator a paper config uses (colored_mnist/cifar20 x dcgan/ddpm; the two SD configs)."""
    if config in IMAGENET:
        return config
    return ("colored_mnist" if config in MNIST else "cifar20") + ("_ddpm" if "ddpm" in config else "")


#: validated in full (the loop's validation, twice: with and without the variant) on one config per generator family
#: and dataset each variant is meant for; the other pairs are checked to compose (cheap)
VALIDATED = sorted({(v, next(c for c in configs if family(c) == f)) for v, (configs, _) in VARIANTS.items()
                    for f in {family(c) for c in configs}})


def lookup(config: dict, dotted: str):
    value = config
    for part in dotted.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def test_every_variant_file_is_covered():
    shipped = {p.name for p in (ROOT / "configs" / "variants").glob("*.yaml")} - {"subgroup_balance.yaml"}
    assert shipped == set(VARIANTS)


@pytest.mark.parametrize(("variant", "config"), PAIRS)
def test_variant_composes_with_the_paper_config(variant, config, capsys):
    args = ["fit", "--config", str(ROOT / "configs" / config), "--config", str(ROOT / "configs" / "variants" / variant)]
    with pytest.raises(SystemExit):
        cli.main([*args, "--print_config"])
    composed = yaml.safe_load(capsys.readouterr().out)
    for key, value in VARIANTS[variant][1].items():
        assert lookup(composed, key) == value, key
    if variant.startswith("paper_filters"):
        clip, uncertainty = composed["filters"]
        assert clip["init_args"]["template"] == "{class_name}" and clip["init_args"]["mode"] == "range"
        assert uncertainty["class_path"] == "filters.UncertaintyFilter"
        assert composed["quality"]["filter_classifier"] in [c.get("name") or c["arch"] for c in composed["classifiers"]]


@pytest.mark.parametrize(("variant", "config"), VALIDATED)
def test_composed_variant_stops_at_validation_only_for_the_missing_data(variant, config, tmp_path, capsys,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative data paths resolve to an empty folder
    base = ["fit", "--config", str(ROOT / "configs" / config)]
    run = ["--trainer.accelerator", "cpu", "--trainer.precision", "32-true", "--loop.run_dir", str(tmp_path / "run")]
    code = cli.main([*base, "--config", str(ROOT / "configs" / "variants" / variant), *run])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and not (tmp_path / "run").exists()
    for expected in EXPECTED_MISSING[config]:
        assert expected in err, (expected, err)
    # the variant adds no problem of its own (no dropout trap, no unfillable prompt): the same message as the paper
    # config alone, which only misses its data and weights
    assert cli.main([*base, *run]) == 2
    assert capsys.readouterr().err == err


def test_the_p_sweep_brackets_p_with_and_without_a_constant_share(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    tasks = load_sweep(ROOT / "configs" / "sweeps" / "p_sweep.yaml")
    variants = {t.overrides for t in tasks}
    assert {dict(v)["data.regime.synthetic_share"] for v in variants} == {0.25, 0.5, 0.75}
    assert {dict(v).get("data.regime.oversample", False) for v in variants} == {False, True}
    assert len(tasks) == 3 * 5 * 3
    for task in {(t.config, t.overrides): t for t in tasks if t.seed == 0}.values():
        args = task.command()[2:]  # fit --config ... --overrides --seed_everything --loop.run_dir
        with pytest.raises(SystemExit):
            cli.main([*args, "--print_config"])
        composed = yaml.safe_load(capsys.readouterr().out)
        for key, value in task.overrides:
            assert lookup(composed, key) == value
