"""Hard ImageNet source on a seeded fake tree in the published layout."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from torch.utils.data import DataLoader

from common.errors import ConfigError
from datamodules.hard_imagenet import HARD_IMAGENET_CLASSES, HARD_IMAGENET_WNIDS, HardImageNet
from tests.fakes.hard_imagenet import write_fake_hard_imagenet


@pytest.fixture(scope="module")
def fake_roots(tmp_path_factory) -> tuple[str, str]:
    return write_fake_hard_imagenet(tmp_path_factory.mktemp("hin"))


def _source(roots: tuple[str, str], **kwargs) -> HardImageNet:
    options = {"image_size": 24, "resize": 32, "val_fraction": 0.25}
    options.update(kwargs)
    return HardImageNet(*roots, **options)


def test_class_table_matches_imagenet_synsets():
    synsets = (Path(timm.__file__).parent / "data" / "_info" / "imagenet_synsets.txt").read_text().split()
    assert len(synsets) == 1000
    for index, wnid, _ in HARD_IMAGENET_CLASSES:
        assert synsets[index] == wnid
    assert [index for index, _, _ in HARD_IMAGENET_CLASSES] == [
        537,
        379,
        785,
        795,
        837,
        433,
        416,
        602,
        706,
        746,
        655,
        810,
        890,
        981,
        801,
    ]
    assert HARD_IMAGENET_WNIDS[0] == "n03218198"


def test_facts(fake_roots):
    source = _source(fake_roots)
    assert source.name == "hard_imagenet"
    assert source.num_classes == 15 and source.num_groups == 0 and source.group_names == []
    assert source.class_names[0] == "dog sled" and source.class_names[14] == "snorkel"
    assert source.image_shape == (3, 24, 24)


def test_counts_labels_and_wnid_mapping(fake_roots):
    source = _source(fake_roots)
    splits = source.load()
    assert {name: len(split) for name, split in splits.items()} == {"train": 45, "val": 15, "test": 30}
    # one unmasked image per class and split exists on disk and is left out
    assert source.counts["train"]["images"] == 75 and source.counts["train"]["masked"] == 60
    assert source.counts["val"]["images"] == 45 and source.counts["val"]["masked"] == 30
    assert source.counts["val"]["per_class"] == [2] * 15
    expected_per_class = {"train": 3, "val": 1, "test": 2}
    for name, split in splits.items():
        assert Counter(split.labels.tolist()) == dict.fromkeys(range(15), expected_per_class[name])
        assert (split.groups == -1).all()
        for path, mask_path, label in zip(split.image_paths, split.mask_paths, split.labels.tolist()):
            wnid = Path(path).parent.name
            assert wnid == HARD_IMAGENET_WNIDS[label]
            assert Path(mask_path).name == f"{wnid}_{Path(path).stem}.png"
    assert set(splits["train"].image_paths).isdisjoint(splits["val"].image_paths)
    assert all("/train/" in p for p in splits["val"].image_paths)
    assert all("/val/" in p for p in splits["test"].image_paths)


def test_samples_and_dataloader(fake_roots):
    split = _source(fake_roots).load()["train"]
    sample = split[0]
    assert set(sample) == {"image", "label", "subgroup", "mask"}
    image, label, group, mask = sample["image"], sample["label"], sample["subgroup"], sample["mask"]
    assert image.dtype == torch.uint8 and image.shape == (3, 24, 24)
    assert mask.dtype == torch.bool and mask.shape == (1, 24, 24)
    assert int(group) == -1 and 0 <= int(label) < 15
    assert 0 < int(mask.sum()) < mask.numel()
    # the fake object is brighter than its background
    assert image[:, mask[0]].float().mean() > image[:, ~mask[0]].float().mean() + 50
    batch = next(iter(DataLoader(split, batch_size=5)))  # the default collate keeps the names
    assert batch["image"].shape == (5, 3, 24, 24) and batch["mask"].shape == (5, 1, 24, 24)
    assert batch["label"].shape == batch["subgroup"].shape == (5,) and batch["mask"].dtype == torch.bool


def test_image_and_mask_share_geometry(tmp_path):
    roots = write_fake_hard_imagenet(tmp_path, n_train_per_class=2, n_val_per_class=1, size=32)
    wnid = HARD_IMAGENET_WNIDS[4]
    # a non-square lossless image, white exactly where the mask is set
    pixels = np.zeros((64, 128), dtype=np.uint8)
    pixels[16:48, 32:96] = 255
    stem = "ILSVRC2012_val_99999999"
    Image.fromarray(pixels).convert("RGB").save(Path(roots[0]) / "val" / wnid / f"{stem}.png")
    Image.fromarray(pixels).save(Path(roots[1]) / "val" / f"{wnid}_{stem}.png")
    test = _source(roots, resize=32, image_size=24).load()["test"]
    index = [Path(p).stem for p in test.image_paths].index(stem)
    sample = test[index]
    image, label, mask = sample["image"], sample["label"], sample["mask"]
    assert int(label) == 4
    # resize 64x128 -> 32x32 (rows /2, cols /4), then centre crop 24 (offset 4): object rows/cols [4, 20)
    expected = torch.zeros(1, 24, 24, dtype=torch.bool)
    expected[0, 4:20, 4:20] = True
    assert torch.equal(mask, expected)
    assert torch.equal(image.float().mean(0, keepdim=True) > 127, expected)


def test_masks_are_binarised_and_jpeg_masks_accepted(tmp_path):
    roots = write_fake_hard_imagenet(tmp_path, n_train_per_class=2, n_val_per_class=1, size=32)
    wnid = HARD_IMAGENET_WNIDS[0]
    png = Path(roots[1]) / "train" / f"{wnid}_{wnid}_0.png"
    values = np.asarray(Image.open(png)).copy()
    values[values > 0] = 7  # a faint, non-255 object value still counts as object
    Image.fromarray(values).save(png.with_suffix(".JPEG"), format="JPEG", quality=100)
    png.unlink()
    source = _source(roots, val_fraction=0.0)
    train = source.load()["train"]
    assert source.counts["train"]["masked"] == 30
    index = train.mask_paths.index(str(png.with_suffix(".JPEG")))
    mask = train[index]["mask"]
    assert mask.dtype == torch.bool and mask.any() and not mask.all()
    for i in range(0, len(train), 7):
        assert set(torch.unique(train[i]["mask"].to(torch.uint8)).tolist()) <= {0, 1}


def test_validation_split_is_seeded_and_stratified(fake_roots):
    first = _source(fake_roots, seed=3).load()
    again = _source(fake_roots, seed=3).load()
    other = _source(fake_roots, seed=4).load()
    assert first["val"].image_paths == again["val"].image_paths
    assert first["val"].image_paths != other["val"].image_paths
    assert sorted(first["val"].labels.tolist()) == list(range(15))


def test_max_per_class(fake_roots):
    splits = _source(fake_roots, max_per_class=2, val_fraction=0.5).load()
    assert Counter(splits["train"].labels.tolist()) == dict.fromkeys(range(15), 1)
    assert Counter(splits["val"].labels.tolist()) == dict.fromkeys(range(15), 1)
    splits = _source(fake_roots, max_per_class=1).load()
    assert len(splits["test"]) == 15 and len(splits["train"]) == 15 and len(splits["val"]) == 0


def test_load_is_lazy(tmp_path):
    roots = write_fake_hard_imagenet(tmp_path, n_train_per_class=2, n_val_per_class=1, size=32)
    test = _source(roots).load()["test"]
    assert test.images is None  # nothing decoded up front
    Path(test.image_paths[0]).unlink()  # only reading that sample can notice
    test[1]
    with pytest.raises(RuntimeError):
        test[0]


def test_validate_reports_missing_roots(tmp_path):
    missing_images, missing_masks = tmp_path / "no_imagenet", tmp_path / "no_masks"
    with pytest.raises(ConfigError) as error:
        HardImageNet(str(missing_images), str(missing_masks)).validate()
    message = str(error.value)
    assert str(missing_images) in message and str(missing_masks) in message
    assert "image-net.org" in message and "github.com/mmoayeri/HardImageNet" in message


def test_validate_lists_every_problem(tmp_path):
    imagenet_root, mask_root = write_fake_hard_imagenet(tmp_path, n_train_per_class=1, n_val_per_class=1, size=16)
    for mask in (Path(mask_root) / "train").iterdir():
        mask.unlink()
    (Path(mask_root) / "train").rmdir()
    for image in (Path(imagenet_root) / "val" / HARD_IMAGENET_WNIDS[3]).iterdir():
        image.unlink()
    (Path(imagenet_root) / "val" / HARD_IMAGENET_WNIDS[3]).rmdir()
    for mask in (Path(mask_root) / "val").glob(f"{HARD_IMAGENET_WNIDS[5]}_*"):
        mask.unlink()
    with pytest.raises(ConfigError) as error:
        HardImageNet(imagenet_root, mask_root, val_fraction=1.5).validate()
    message = str(error.value)
    assert "val_fraction" in message
    assert str(Path(mask_root) / "train") in message
    assert str(Path(imagenet_root) / "val" / HARD_IMAGENET_WNIDS[3]) in message
    assert f"{Path(imagenet_root) / 'val' / HARD_IMAGENET_WNIDS[5]} (swimming cap) has no image with a mask" in message
    assert message.count("\n  - ") == 4
    assert "github.com/mmoayeri/HardImageNet" in message


def test_bad_arguments_are_config_errors(fake_roots):
    with pytest.raises(ConfigError, match="resize"):
        _source(fake_roots, resize=16, image_size=24).validate()
    with pytest.raises(ConfigError, match="test_split"):
        _source(fake_roots, test_split="train").load()
    with pytest.raises(ConfigError, match="max_per_class"):
        _source(fake_roots, max_per_class=0).validate()
