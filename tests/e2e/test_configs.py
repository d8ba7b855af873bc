"""Every shipped experiment config parses and, without its data/weights, stops at validation naming them."""

from pathlib import Path

import pytest

import cli

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_MISSING = {
    "colored_mnist.yaml": ["root 'data' does not exist"],
    "colored_mnist_biased.yaml": ["root 'data' does not exist"],
    "cifar20.yaml": ["cifar-100-python"],
    "cifar20_biased.yaml": ["cifar-100-python"],
    "cifar20_pretrained.yaml": ["cifar-100-python", "resnet50-11ad3fa6.pth", "vgg19-dcbb9e9d.pth"],
    "hardimagenet.yaml": ["imagenet_root data/imagenet does not exist", "stable-diffusion-v1-5", "ViT-B-32"],
}


def test_every_experiment_config_is_covered():
    shipped = {p.name for p in (ROOT / "configs").glob("*.yaml")} - {"quickstart.yaml"}
    assert shipped == set(EXPECTED_MISSING)


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
