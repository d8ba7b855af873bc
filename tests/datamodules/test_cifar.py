"""CIFAR-20/100: label/subgroup mapping, pixel layout, val split, biased variant, config errors, safe unpickling."""

from __future__ import annotations

import os
import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import ConfigError
from datamodules.base import ImageSplit
from datamodules.cifar import (
    CIFAR20,
    COARSE_OF_FINE,
    DEFAULT_BOTTOM_CLASSES,
    SUBGROUP_OF_FINE,
    CifarBatchUnpickler,
    read_cifar_pickle,
)
from tests.fakes import cifar100 as fake

N_TRAIN, N_TEST = 22, 4  # 22 per fine class: val 0.1 -> 2, train 20, a bottom class keeps round(0.25 * 20) = 5


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    fake.write_fake_cifar100(root, n_train_per_fine=N_TRAIN, n_test_per_fine=N_TEST, seed=7)
    return root


@pytest.fixture(scope="module")
def unbiased(fake_root) -> dict[str, ImageSplit]:
    return CIFAR20(root=str(fake_root), seed=1).load()


@pytest.fixture(scope="module")
def biased(fake_root) -> dict[str, ImageSplit]:
    return CIFAR20(root=str(fake_root), biased=True, seed=1).load()


def _raw_batch(path: Path) -> dict[bytes, object]:
    """Read a file the test itself wrote, with plain pickle, as the independent view of its content."""
    with open(path, "rb") as handle:
        return pickle.load(handle, encoding="bytes")


def _fine_labels(split: ImageSplit) -> torch.Tensor:
    """Recover the fine label of every sample from (superclass, subgroup) via the reported membership."""
    members = CIFAR20().superclass_members
    return torch.tensor(
        [fake.FINE_LABEL_NAMES.index(members[c][g]) for c, g in zip(split.labels.tolist(), split.groups.tolist())]
    )


def _fingerprints(images: torch.Tensor) -> list[bytes]:
    return sorted(image.numpy().tobytes() for image in images)


def test_facts():
    data = CIFAR20()
    assert data.name == "cifar20"
    assert (data.num_classes, data.num_groups, data.image_shape) == (20, 5, (3, 32, 32))
    assert data.group_names == ["sub0", "sub1", "sub2", "sub3", "sub4"]
    assert data.class_names == fake.COARSE_LABEL_NAMES
    assert data.fine_class_names == fake.FINE_LABEL_NAMES
    assert data.superclass_members[0] == ["beaver", "dolphin", "otter", "seal", "whale"]
    assert len(DEFAULT_BOTTOM_CLASSES) == 40 and len(set(DEFAULT_BOTTOM_CLASSES)) == 40


def test_every_fine_class_maps_to_its_superclass_and_a_distinct_subgroup():
    assert COARSE_OF_FINE.tolist() == fake.COARSE_OF_FINE
    members = CIFAR20().superclass_members
    for coarse in range(20):
        fines = [f for f in range(100) if fake.COARSE_OF_FINE[f] == coarse]  # ascending fine-label order
        assert [SUBGROUP_OF_FINE[f] for f in fines] == [0, 1, 2, 3, 4]
        assert members[coarse] == [fake.FINE_LABEL_NAMES[f] for f in fines]
    named = {fake.FINE_LABEL_NAMES[f]: (int(COARSE_OF_FINE[f]), int(SUBGROUP_OF_FINE[f])) for f in range(100)}
    assert named["beaver"] == (0, 0) and named["whale"] == (0, 4)
    assert named["aquarium_fish"] == (1, 0) and named["woman"] == (14, 4) and named["tractor"] == (19, 4)


def test_loaded_test_split_labels_follow_the_file(fake_root, unbiased):
    raw = _raw_batch(fake_root / "cifar-100-python" / "test")
    fine = np.asarray(raw[b"fine_labels"])
    test = unbiased["test"]
    assert len(test) == 100 * N_TEST
    assert test.labels.tolist() == [fake.COARSE_OF_FINE[f] for f in fine]
    assert test.groups.tolist() == SUBGROUP_OF_FINE[fine].tolist()
    assert _fine_labels(test).tolist() == fine.tolist()
    assert torch.equal(test.images.flatten(1), torch.from_numpy(raw[b"data"]))


def test_image_layout_is_row_major_rgb_planes(tmp_path):
    folder = fake.write_fake_cifar100(tmp_path, n_train_per_fine=2, n_test_per_fine=1)
    pattern = np.zeros((3, 32, 32), dtype=np.uint8)
    pattern[0], pattern[1], pattern[2] = 10, 20, 30
    pattern[0, 2, 5] = 255  # red, row 2, column 5
    pattern[2, 31, 0] = 77  # blue, last row, first column
    flat = np.zeros((2, 3072), dtype=np.uint8)
    flat[0, :1024], flat[0, 1024:2048], flat[0, 2048:] = 10, 20, 30
    flat[0, 2 * 32 + 5] = 255
    flat[0, 2048 + 31 * 32] = 77
    flat[1] = np.arange(3072) % 256
    assert np.array_equal(flat[0], pattern.reshape(-1))
    fake.write_py2_pickle(fake.make_batch(flat, [4, 99], b"testing batch 1 of 1"), folder / "test")

    test = CIFAR20(root=str(tmp_path)).load()["test"]
    assert test.images.dtype == torch.uint8 and test.images.shape == (2, 3, 32, 32)
    assert torch.equal(test.images[0], torch.from_numpy(pattern))
    assert test.images[1, 1, 0, 0] == 1024 % 256 and test.images[1, 0, 1, 3] == 35
    assert test.labels.tolist() == [0, 13] and test.groups.tolist() == [0, 4]  # beaver, worm


def test_val_split_is_stratified_disjoint_and_seeded(fake_root, unbiased):
    train, val = unbiased["train"], unbiased["val"]
    assert torch.bincount(_fine_labels(val), minlength=100).tolist() == [2] * 100
    assert torch.bincount(_fine_labels(train), minlength=100).tolist() == [N_TRAIN - 2] * 100
    all_train = torch.from_numpy(_raw_batch(fake_root / "cifar-100-python" / "train")[b"data"]).reshape(-1, 3, 32, 32)
    assert _fingerprints(torch.cat([train.images, val.images])) == _fingerprints(all_train)
    again = CIFAR20(root=str(fake_root), seed=1).load()["val"]
    other = CIFAR20(root=str(fake_root), seed=2).load()["val"]
    assert torch.equal(again.images, val.images)
    assert not torch.equal(other.images, val.images)


def test_biased_variant_starves_only_the_bottom_training_classes(unbiased, biased):
    counts = torch.bincount(_fine_labels(biased["train"]), minlength=100)
    bottom = {fake.FINE_LABEL_NAMES.index(name) for name in DEFAULT_BOTTOM_CLASSES}
    expected = [round(0.25 * (N_TRAIN - 2)) if fine in bottom else N_TRAIN - 2 for fine in range(100)]
    assert counts.tolist() == expected
    assert expected.count(5) == 40
    # kept images come from the unbiased training split; val (carved first) and test are untouched
    assert set(_fingerprints(biased["train"].images)) <= set(_fingerprints(unbiased["train"].images))
    for split in ("val", "test"):
        assert torch.equal(biased[split].images, unbiased[split].images)
        assert torch.equal(biased[split].groups, unbiased[split].groups)


def test_biased_with_custom_classes_and_fraction(fake_root):
    train = CIFAR20(root=str(fake_root), biased=True, bottom_classes=["apple", "worm"], bottom_fraction=0.5).load()
    counts = torch.bincount(_fine_labels(train["train"]), minlength=100)
    expected = torch.full((100,), N_TRAIN - 2)
    expected[fake.FINE_LABEL_NAMES.index("apple")] = expected[fake.FINE_LABEL_NAMES.index("worm")] = 10
    assert torch.equal(counts, expected)


def test_max_train_samples_keeps_fine_class_shares(fake_root):
    splits = CIFAR20(root=str(fake_root), max_train_samples=300).load()
    assert torch.bincount(_fine_labels(splits["train"]), minlength=100).tolist() == [3] * 100
    assert len(splits["val"]) == 200 and len(splits["test"]) == 100 * N_TEST


def test_missing_root_and_folder_errors(tmp_path):
    for root in (tmp_path / "nowhere", tmp_path):
        with pytest.raises(ConfigError) as error:
            CIFAR20(root=str(root)).validate()
        message = str(error.value)
        assert str(root / "cifar-100-python") in message
        assert "set download: true on a machine with internet" in message
        assert "point root at the folder holding cifar-100-python" in message
    CIFAR20(root=str(tmp_path / "nowhere"), download=True).validate()  # fetched later, in load()


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"bottom_classes": ["beaver", "unicorn", "Otter"]}, "['unicorn', 'Otter']"),
        ({"bottom_fraction": 0.0}, "bottom_fraction must be in (0, 1]"),
        ({"bottom_fraction": 1.5}, "bottom_fraction must be in (0, 1]"),
        ({"val_fraction": 0.0}, "val_fraction must be in (0, 1)"),
        ({"val_fraction": 1.0}, "val_fraction must be in (0, 1)"),
        ({"max_train_samples": 0}, "max_train_samples must be >= 1"),
    ],
)
def test_bad_settings_are_config_errors(fake_root, kwargs, expected):
    with pytest.raises(ConfigError, match="cifar20: ") as error:
        CIFAR20(root=str(fake_root), **kwargs).validate()
    assert expected in str(error.value)


def test_bottom_fraction_one_keeps_everything(fake_root, unbiased):
    same = CIFAR20(root=str(fake_root), biased=True, bottom_fraction=1.0, seed=1).load()
    assert torch.equal(same["train"].images, unbiased["train"].images)


def test_wrong_names_or_mapping_in_the_files_are_config_errors(tmp_path):
    folder = fake.write_fake_cifar100(tmp_path, n_train_per_fine=1, n_test_per_fine=1)
    meta = fake.make_meta()
    meta[b"fine_label_names"][0], meta[b"fine_label_names"][1] = b"aquarium_fish", b"apple"
    fake.write_py2_pickle(meta, folder / "meta")
    with pytest.raises(ConfigError, match="standard 100 fine / 20 coarse"):
        CIFAR20(root=str(tmp_path)).load()

    fake.write_py2_pickle(fake.make_meta(), folder / "meta")
    batch = fake.make_batch(np.zeros((2, 3072), dtype=np.uint8), [0, 1], b"testing batch 1 of 1")
    batch[b"coarse_labels"][1] = 7
    fake.write_py2_pickle(batch, folder / "test")
    with pytest.raises(ConfigError, match="puts fine class 'aquarium_fish' in superclass 7, but CIFAR-100 has it in 1"):
        CIFAR20(root=str(tmp_path)).load()


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_foreign_globals(tmp_path):
    path = tmp_path / "evil"
    path.write_bytes(pickle.dumps({"data": _Exploit()}, protocol=2))
    with open(path, "rb") as handle, pytest.raises(pickle.UnpicklingError, match=r"refusing global (posix|nt)\.system"):
        CifarBatchUnpickler(handle, encoding="latin1").load()
    with pytest.raises(ConfigError, match="not a valid CIFAR-100 pickle"):
        read_cifar_pickle(path)
    # numpy arrays, also as numpy 2 pickles them, are still allowed
    path.write_bytes(pickle.dumps({b"data": np.arange(6, dtype=np.uint8)}, protocol=4))
    assert read_cifar_pickle(path)["data"].tolist() == list(range(6))


def test_tampered_batch_file_fails_at_load(tmp_path):
    folder = fake.write_fake_cifar100(tmp_path, n_train_per_fine=1, n_test_per_fine=1)
    (folder / "train").write_bytes(pickle.dumps(_Exploit(), protocol=2))
    with pytest.raises(ConfigError, match="refusing global"):
        CIFAR20(root=str(tmp_path)).load()


def test_download_fetches_the_archive_only_when_missing(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils
    from torchvision.datasets import CIFAR100

    calls: list[tuple] = []

    def fake_download(url, download_root, filename=None, md5=None, **kwargs):
        calls.append((url, download_root, filename, md5))
        fake.write_fake_cifar100(download_root, n_train_per_fine=1, n_test_per_fine=1)

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fake_download)
    root = str(tmp_path / "fresh")
    assert len(CIFAR20(root=root, download=True).load()["test"]) == 100
    assert calls == [(CIFAR100.url, root, CIFAR100.filename, CIFAR100.tgz_md5)]
    CIFAR20(root=root, download=True).load()
    assert len(calls) == 1  # files present: nothing fetched


def test_download_offline_is_a_config_error(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(ConfigError, match="set download: true on a machine with internet"):
        CIFAR20(root=str(tmp_path), download=True).load()


def test_configured_by_jsonargparse(fake_root):
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(CIFAR20, "data")
    config = parser.parse_string(
        f"data:\n  root: {fake_root}\n  biased: true\n  bottom_classes: [apple, worm]\n  max_train_samples: 100\n"
    )
    data = parser.instantiate_classes(config).data
    assert isinstance(data, CIFAR20)
    assert (data.biased, data.bottom_classes, data.max_train_samples) == (True, ["apple", "worm"], 100)
    with pytest.raises(ConfigError, match="unknown"):
        CIFAR20(**{**config.data.as_dict(), "bottom_classes": ["apples"]}).validate()


@pytest.mark.parametrize("biased", [False, True])
def test_zhang2024_split_takes_40_40_20_per_fine_class_in_file_order(fake_root, biased):
    # 22 images per fine class: train int(22 * 0.4) = 8 (a bottom class of the biased variant: int(8 * 0.25) = 2),
    # held out 8..int(22 * 0.8) = 17 (9 images, unused), val the last 22 - 17 = 5; test untouched (4)
    splits = CIFAR20(root=str(fake_root), split="zhang2024", biased=biased, seed=123).load()
    bottom = set(DEFAULT_BOTTOM_CLASSES) if biased else set()
    train_counts = torch.bincount(_fine_labels(splits["train"]), minlength=100).tolist()
    expected = [2 if name in bottom else 8 for name in fake.FINE_LABEL_NAMES]
    assert train_counts == expected
    assert sum(train_counts) == (60 * 8 + 40 * 2 if biased else 800)
    assert torch.bincount(_fine_labels(splits["val"]), minlength=100).tolist() == [5] * 100
    assert torch.bincount(_fine_labels(splits["test"]), minlength=100).tolist() == [N_TEST] * 100
    # which images: the first ones of each fine class in the order of the training file, the last ones validate
    raw = _raw_batch(fake_root / "cifar-100-python" / "train")
    data = np.asarray(raw[b"data"]).reshape(-1, 3, 32, 32)
    file_fine = np.asarray(raw[b"fine_labels"])
    first, last = [], []
    for label, name in enumerate(fake.FINE_LABEL_NAMES):
        members = np.flatnonzero(file_fine == label)
        first += list(members[: 2 if name in bottom else 8])
        last += list(members[17:])
    assert _fingerprints(splits["train"].images) == _fingerprints(torch.from_numpy(data[first]))
    assert _fingerprints(splits["val"].images) == _fingerprints(torch.from_numpy(data[last]))
    # no randomness: another seed gives the same split
    again = CIFAR20(root=str(fake_root), split="zhang2024", biased=biased, seed=5).load()
    assert torch.equal(again["train"].images, splits["train"].images)


def test_an_unknown_split_is_a_config_error(fake_root):
    with pytest.raises(ConfigError, match="split must be one of"):
        CIFAR20(root=str(fake_root), split="zhang").validate()


def test_the_zhang_biased_config_gives_the_cited_counts_on_the_fake_cifar(fake_root):
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs" / "cifar20_zhang_biased.yaml").read_text())
    init_args = {**config["data"]["source"]["init_args"], "root": str(fake_root)}
    splits = CIFAR20(**init_args).load()
    counts = dict(zip(fake.FINE_LABEL_NAMES, torch.bincount(_fine_labels(splits["train"]), minlength=100).tolist()))
    assert counts["beaver"] == counts["otter"] == counts["streetcar"] == counts["tractor"] == 2  # int(8 * 0.25)
    assert counts["dolphin"] == counts["seal"] == counts["whale"] == counts["rocket"] == 8  # int(22 * 0.4)
    assert sorted(name for name, n in counts.items() if n == 2) == sorted(DEFAULT_BOTTOM_CLASSES)
