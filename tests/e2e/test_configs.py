"""Every shipped experiment config parses and, without its data/weights, stops at validation naming them."""

from pathlib import Path

import pytest
import yaml

import cli

ROOT = Path(__file__).resolve().parents[2]
#: every paper config filters with CLIP and measures Inception FID, so it also names their weights
PAPER_WEIGHTS = ["ViT-B-32", "weights-inception-2015-12-05-6726825d.pth"]
EXPECTED_MISSING = {
    "colored_mnist.yaml": ["root 'data' does not exist", *PAPER_WEIGHTS],
    "colored_mnist_biased.yaml": ["root 'data' does not exist", *PAPER_WEIGHTS],
    "cifar20.yaml": ["cifar-100-python", *PAPER_WEIGHTS],
    "cifar20_biased.yaml": ["cifar-100-python", *PAPER_WEIGHTS],
    "cifar20_zhang.yaml": ["cifar-100-python", *PAPER_WEIGHTS],
    "cifar20_zhang_biased.yaml": ["cifar-100-python", *PAPER_WEIGHTS],
    "cifar20_pretrained.yaml": ["cifar-100-python", "resnet50-11ad3fa6.pth", "vgg19-dcbb9e9d.pth", *PAPER_WEIGHTS],
    "hardimagenet.yaml": ["imagenet_root data/imagenet does not exist", "stable-diffusion-v1-5", *PAPER_WEIGHTS],
    "breeds_living17.yaml": ["imagenet_root data/imagenet does not exist",
                             "info_dir data/BREEDS-Benchmarks/imagenet_class_hierarchy/modified",
                             "github.com/MadryLab/BREEDS-Benchmarks", "stable-diffusion-v1-5", "resnet50-11ad3fa6.pth",
                             "timm/deit_small_patch16_224", *PAPER_WEIGHTS],
    "colored_mnist_ddpm.yaml": ["root 'data' does not exist", *PAPER_WEIGHTS],
    "cifar20_ddpm.yaml": ["cifar-100-python", *PAPER_WEIGHTS],
    "celeba_blond.yaml": ["missing table data/celeba/blond_male.csv", "mmlab.ie.cuhk.edu.hk/projects/CelebA",
                          "scripts/celeba_table.py", "stable-diffusion-v1-5", "resnet50-11ad3fa6.pth", *PAPER_WEIGHTS],
    "waterbirds.yaml": ["missing table data/waterbird_complete95_forest2water2/metadata.csv",
                        "waterbird_complete95_forest2water2.tar.gz", "stable-diffusion-v1-5", *PAPER_WEIGHTS],
    "fairface.yaml": ["missing table data/fairface/fairface_label_train.csv",
                      "missing table data/fairface/fairface_label_val.csv", "github.com/joojs/fairface",
                      "stable-diffusion-v1-5", *PAPER_WEIGHTS],
}
#: appendix C's r per paper config, and the prompt the CLIP filter builds from a class name
CLIP_FILTER = {
    "colored_mnist.yaml": (0.1, "a photo of the digit {class_name}"),
    "colored_mnist_biased.yaml": (0.1, "a photo of the digit {class_name}"),
    "cifar20.yaml": (0.3, "a photo of {class_name}"),
    "cifar20_biased.yaml": (0.3, "a photo of {class_name}"),
    "cifar20_zhang.yaml": (0.3, "a photo of {class_name}"),
    "cifar20_zhang_biased.yaml": (0.3, "a photo of {class_name}"),
    "cifar20_pretrained.yaml": (0.3, "a photo of {class_name}"),
    "hardimagenet.yaml": (0.6, "a photo of a {class_name}"),
    "breeds_living17.yaml": (0.6, "a photo of a {class_name}"),
    "colored_mnist_ddpm.yaml": (0.1, "a photo of the digit {class_name}"),
    "cifar20_ddpm.yaml": (0.3, "a photo of {class_name}"),
    "celeba_blond.yaml": (0.6, "a photo of a {class_name}"),
    "waterbirds.yaml": (0.6, "a photo of a {class_name}"),
    "fairface.yaml": (0.6, "a photo of a {class_name}"),
}
#: the README's one override that runs a paper config without CLIP
WITHOUT_CLIP = '[{"class_path": "filters.UncertaintyFilter", "init_args": {"ratio": 0.1}}]'


def test_every_experiment_config_is_covered():
    shipped = {p.name for p in (ROOT / "configs").glob("*.yaml")} - {"quickstart.yaml"}
    assert shipped == set(EXPECTED_MISSING) == set(CLIP_FILTER)


@pytest.mark.parametrize("name", sorted(CLIP_FILTER))
def test_print_config_shows_the_appendix_clip_filter_and_inception_fid(name, capsys):
    with pytest.raises(SystemExit):
        cli.main(["fit", "--config", str(ROOT / "configs" / name), "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    ratio, template = CLIP_FILTER[name]
    first = config["filters"][0]
    assert first["class_path"] == "filters.ClipScoreFilter" and len(config["filters"]) == 1  # uncertainty: optional
    assert first["init_args"]["ratio"] == ratio and first["init_args"]["template"] == template
    assert first["init_args"]["model_name"] == "ViT-B-32" and first["init_args"]["mode"] == "quantile"
    assert config["quality"]["fid"]["extractor"] == "inception"


def test_the_paper_prompts_read_naturally():
    from datamodules.cifar import COARSE_CLASS_NAMES
    from filters import ClipScoreFilter

    mnist = ClipScoreFilter(ratio=0.1, template=CLIP_FILTER["colored_mnist.yaml"][1])
    assert mnist.prompts([str(d) for d in range(10)])[3] == "a photo of the digit 3"
    cifar = ClipScoreFilter(ratio=0.3, template=CLIP_FILTER["cifar20.yaml"][1]).prompts(COARSE_CLASS_NAMES)
    assert cifar[0] == "a photo of aquatic mammals" and cifar[9] == "a photo of large man-made outdoor things"
    hard = ClipScoreFilter(ratio=0.6, template=CLIP_FILTER["hardimagenet.yaml"][1])
    assert hard.prompts(["dog sled"]) == ["a photo of a dog sled"]
    living = ClipScoreFilter(ratio=0.6, template=CLIP_FILTER["breeds_living17.yaml"][1])
    assert living.prompts(["domestic cat"]) == ["a photo of a domestic cat"]


def test_the_living17_config_follows_appendix_a_and_fills_the_stack_to_p(capsys):
    import math

    from datamodules.breeds import Living17

    with pytest.raises(SystemExit):
        cli.main(["fit", "--config", str(ROOT / "configs" / "breeds_living17.yaml"), "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    source = config["data"]["source"]
    assert source["class_path"] == "datamodules.breeds.Living17"
    assert config["model"]["init_args"]["class_names"] == Living17("unused").class_names
    assert config["model"]["init_args"]["train_resolution"] == config["model"]["init_args"]["generation_resolution"]
    assert {c["arch"] for c in config["classifiers"]} == {"alexnet", "mobilenet_v3", "vgg19", "resnet50", "deit_small"}
    assert all(c["pretrained"] for c in config["classifiers"])
    assert config["quality"]["oracle"]["arch"]  # u_t needs the learned subclass oracle
    loop, regime = config["loop"], config["data"]["regime"]
    window, p = regime["window"], regime["synthetic_share"]
    assert (loop["generations"], regime["policy"], window, p) == (5, "fifo", 3, 0.5)
    # the project's rule for S: 3 kept blocks (after the CLIP filter's r, per class) cover the real training set
    # (68 ImageNet classes of at most 1,300 train images, minus the validation share of each)
    ratio, val_fraction = config["filters"][0]["init_args"]["ratio"], source["init_args"]["val_fraction"]
    n_real = 68 * (1300 - round(val_fraction * 1300))
    per_class = loop["samples_per_generation"] // 17
    assert per_class * 17 == loop["samples_per_generation"]
    kept = 17 * math.ceil((1 - ratio) * per_class)
    assert window * kept >= round(p / (1 - p) * n_real)
    assert (window - 1) * kept < n_real  # and not more than needed: p is reached at the 3rd block


def test_the_quickstart_keeps_the_offline_uncertainty_filter_and_classifier_fid(capsys):
    with pytest.raises(SystemExit):
        cli.main(["fit", "--config", str(ROOT / "configs" / "quickstart.yaml"), "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert [f["class_path"] for f in config["filters"]] == ["filters.UncertaintyFilter"]
    assert config["filters"][0]["init_args"]["score"] == "label_probability"
    assert config["quality"]["fid"]["extractor"] == "classifier"


def test_one_override_runs_a_paper_config_without_clip(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = cli.main(["fit", "--config", str(ROOT / "configs" / "colored_mnist.yaml"), "--trainer.accelerator", "cpu",
                     "--trainer.precision", "32-true", "--loop.run_dir", str(tmp_path / "run"),
                     "--filters", WITHOUT_CLIP])
    err = capsys.readouterr().err
    assert code == 2 and "root 'data' does not exist" in err  # the data is still missing here
    assert "ViT-B-32" not in err and "open_clip" not in err  # but CLIP is no longer needed


@pytest.mark.parametrize("name", sorted(EXPECTED_MISSING))
def test_config_stops_at_validation_listing_what_is_missing(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative data paths resolve to an empty folder
    code = cli.main(["fit", "--config", str(ROOT / "configs" / name), "--trainer.accelerator", "cpu",
                     "--trainer.precision", "32-true", "--loop.run_dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    for expected in EXPECTED_MISSING[name]:
        assert expected in err, (expected, err)
    assert "trainer settings" not in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_impossible_hardware_is_reported_with_the_fix(tmp_path, capsys):
    code = cli.main(["fit", "--config", str(ROOT / "tests" / "configs" / "tiny_mnist.yaml"), "--trainer.accelerator",
                     "gpu", "--loop.run_dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "trainer settings cannot run here" in err and "--trainer.accelerator cpu" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name, real_train", [("celeba_blond.yaml", 162_770), ("waterbirds.yaml", 4_795),
                                              ("fairface.yaml", 86_744 - round(0.1 * 86_744))])
def test_the_table_configs_fill_the_stack_to_p_and_name_their_classes_alike(name, real_train, capsys):
    """S by the rule of docs/loop.md (3 kept blocks cover the real training set, not more than needed), the generator's
    class names equal the source's, and u_t has the learned oracle."""
    import math

    with pytest.raises(SystemExit):
        cli.main(["fit", "--config", str(ROOT / "configs" / name), "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    source = config["data"]["source"]
    assert source["class_path"] == "datamodules.table.TableImageSource"
    names = source["init_args"]["class_names"]
    assert config["model"]["init_args"]["class_names"] == list(names.values() if isinstance(names, dict) else names)
    assert config["model"]["init_args"]["train_resolution"] == 512 and config["quality"]["oracle"]["arch"]
    loop, ratio = config["loop"], config["filters"][0]["init_args"]["ratio"]
    kept = math.floor((1 - ratio) * loop["samples_per_generation"])
    window = config["data"]["regime"]["window"]
    assert window * kept >= real_train > (window - 1) * kept


@pytest.mark.parametrize("name", sorted(CLIP_FILTER))
def test_paper_configs_fix_the_global_batch_and_sd_checkpoints_every_n_steps(name, capsys):
    with pytest.raises(SystemExit):
        cli.main(["fit", "--config", str(ROOT / "configs" / name), "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["data"]["batch_size_is_global"] is True  # the same experiment on any number of devices
    text = (ROOT / "configs" / name).read_text()
    assert "this project's choice" in text and "authors' batch" not in text  # the paper states none
    sd = config["model"]["class_path"].endswith("StableDiffusionLoRA")
    assert config["loop"]["generator_checkpoint_every_n_steps"] == (500 if sd else None)


TINY_MNIST = str(ROOT / "tests" / "configs" / "tiny_mnist.yaml")


def _fit_error(tmp_path, capsys, *overrides: str) -> tuple[int, str]:
    code = cli.main(["fit", "--config", TINY_MNIST, "--loop.run_dir", str(tmp_path / "run"), *overrides])
    return code, capsys.readouterr().err


def test_an_uncertainty_filter_on_a_classifier_without_dropout_is_refused_naming_those_with(tmp_path, capsys):
    classifiers = ('[{"arch": "tiny_cnn", "name": "plain", "dropout": 0.0}, {"arch": "tiny_cnn", "name": "mc"}, '
                   '{"arch": "resnet18", "name": "res"}]')
    code, err = _fit_error(tmp_path, capsys, "--classifiers", classifiers, "--quality.filter_classifier", "plain")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert ("UncertaintyFilter scores with MC dropout, but quality.filter_classifier 'plain' (tiny_cnn) has no dropout "
            "module with p > 0, so every pass would be the same: set quality.filter_classifier to one that has (mc)"
            ) in lines[0]
    assert not (tmp_path / "run").exists()
    # without any classifier that has dropout, the line says how to add one
    code, err = _fit_error(tmp_path, capsys, "--classifiers", '[{"arch": "resnet18"}]')
    assert code == 2 and "has no dropout module" in err and "add a classifier with dropout" in err


@pytest.mark.parametrize("name", ["hardimagenet.yaml", "breeds_living17.yaml"])
def test_the_paper_configs_filter_classifier_has_dropout(name, capsys):
    from datamodules.breeds import Living17
    from simulation.config import ClassifierConfig
    from simulation.validation import has_dropout

    with pytest.raises(SystemExit):
        cli.main(["fit", "--config", str(ROOT / "configs" / name), "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    chosen = next(c for c in config["classifiers"] if c["arch"] == config["quality"]["filter_classifier"])
    assert has_dropout(ClassifierConfig(**chosen), Living17("unused"))
    assert not has_dropout(ClassifierConfig(arch="resnet50"), Living17("unused"))  # the former choice


@pytest.mark.filterwarnings("ignore:ClipScoreFilter uses a randomly initialised")
@pytest.mark.parametrize(("template", "class_names", "message"), [
    ("a photo of a {class_name} in {colour}", None,
     "placeholder(s) ['colour'] that the dataset cannot fill: a prompt knows only {class_name}"),
    ("a photo of a {class_name}", ["zero", "one"],
     "ClipScoreFilter.class_names has 2 names but the dataset has 10 classes"),
])
def test_a_clip_prompt_the_dataset_cannot_fill_is_refused_before_any_work(template, class_names, message, tmp_path,
                                                                         capsys):
    import json

    init = {"ratio": 0.1, "pretrained": None, "template": template, "class_names": class_names}
    code, err = _fit_error(tmp_path, capsys, "--filters",
                           json.dumps([{"class_path": "filters.ClipScoreFilter", "init_args": init}]))
    lines = [line for line in err.splitlines() if line.strip() and "randomly initialised" not in line]
    assert code == 2 and message in err, err
    assert len([line for line in lines if "error" in line.lower()]) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("name", "biased"), [("cifar20_zhang.yaml", False), ("cifar20_zhang_biased.yaml", True)])
def test_the_zhang_configs_use_the_cited_split_and_fill_the_stack_to_p(name, biased, capsys):
    import math

    with pytest.raises(SystemExit):
        cli.main(["fit", "--config", str(ROOT / "configs" / name), "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    source = config["data"]["source"]["init_args"]
    assert source["split"] == "zhang2024" and source["biased"] is biased and source["bottom_fraction"] == 0.25
    # CIFAR-100 has 500 training images per fine class: 200 train (a bottom class keeps int(200 * 0.25) = 50)
    n_real = 60 * 200 + 40 * 50 if biased else 100 * 200
    loop, ratio = config["loop"], config["filters"][0]["init_args"]["ratio"]
    window, p = config["data"]["regime"]["window"], config["data"]["regime"]["synthetic_share"]
    per_class = loop["samples_per_generation"] // 20
    assert per_class * 20 == loop["samples_per_generation"]
    kept = 20 * math.ceil((1 - ratio) * per_class)
    assert window * kept >= round(p / (1 - p) * n_real)
    assert (window - 1) * kept < n_real


def test_a_filter_ratio_the_block_cannot_fill_is_refused_before_any_work(tmp_path, capsys):
    # 100 samples over 10 digits: 10 a class, and r = 0.05 keeps ceil(0.95 x 10) = 10 of them: the filter drops nothing
    filters = '[{"class_path": "filters.UncertaintyFilter", "init_args": {"ratio": 0.05}}]'
    code, err = _fit_error(tmp_path, capsys, "--filters", filters)
    assert code == 2 and len([line for line in err.splitlines() if line.strip()]) == 1, err
    assert ("filters[0] UncertaintyFilter ratio 0.05 drops no sample: a class reaches it with about 10 generated "
            "samples (loop.samples_per_generation 100 over 10 classes) and ceil((1 - r) x 10) = 10 keeps them all: "
            "raise loop.samples_per_generation to at least 200 or the ratio") in err
    assert not (tmp_path / "run").exists()
    # a chain: the second filter sees the first one's survivors (9 a class after r = 0.1; r = 0.1 of 9 drops none)
    chain = ('[{"class_path": "filters.UncertaintyFilter", "init_args": {"ratio": 0.1}}, '
             '{"class_path": "filters.UncertaintyFilter", "init_args": {"ratio": 0.1}}]')
    code, err = _fit_error(tmp_path, capsys, "--filters", chain)
    assert code == 2 and "filters[1] UncertaintyFilter ratio 0.1 drops no sample" in err and "about 9" in err
