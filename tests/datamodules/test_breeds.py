"""BREEDS Living-17: the hierarchy builder on fake BREEDS files, and the source on a seeded fake ImageNet tree: labels,
subgroups, splits, views, the oracle's cells and one message naming every missing path."""

from __future__ import annotations

import pickle
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from common.errors import ConfigError
from common.image_views import ImageView
from datamodules.base import CellSplit
from datamodules.breeds import LIVING17, Living17
from datamodules.breeds_hierarchy import get_superclasses, make_living17, read_hierarchy
from tests.fakes.breeds import (
    add_striped_living17_image,
    colour_of,
    imagenet_synsets,
    write_breeds_info,
    write_fake_imagenet_living17,
    write_living17_info,
)


# ------------------------------------------------------------------------------------------------ builder
def _small_hierarchy(info_dir: Path) -> str:
    """A hand-made hierarchy exercising every rule of the reference algorithm (levels below root 'root').

    zeta: 7 classes (z7 sits below class z6, so the search stops at z6), alpha: exactly 4, small: 3 (dropped),
    shifted: level 3 by its longest path (dropped) though a child of life, x: level 2 with shifted's 4 classes,
    late: level 2 by its longest path although also a child of root, other: outside the ancestor, barren: above
    no dataset class, orphan: a dataset class in no edge.
    """
    edges = [("root", "life"), ("root", "stuff"), ("life", "zeta")] + [("zeta", f"z{i}") for i in range(7)]
    edges += [("z6", "z7"), ("life", "alpha")] + [("alpha", f"a{i}") for i in range(4)]
    edges += [("life", "small")] + [("small", f"m{i}") for i in range(3)]
    edges += [("life", "x"), ("x", "shifted"), ("life", "shifted")] + [("shifted", f"s{i}") for i in range(4)]
    edges += [("root", "late"), ("life", "late"), ("late", "mid")] + [("mid", f"t{i}") for i in range(5)]
    edges += [("stuff", "other")] + [("other", f"o{i}") for i in range(5)]
    edges += [("life", "barren"), ("barren", "not_a_class")]
    leaves = [f"z{i}" for i in range(8)] + [f"a{i}" for i in range(4)] + [f"m{i}" for i in range(3)]
    leaves += [f"s{i}" for i in range(4)] + [f"t{i}" for i in range(5)] + [f"o{i}" for i in range(5)] + ["orphan"]
    classes = [(index, wnid, f"class {wnid}, synonym") for index, wnid in enumerate(leaves)]
    names = {"root": "entity", "life": "living thing", "zeta": "zeta group, zetas", "alpha": "alpha group",
             "small": "small group", "x": "x group", "shifted": "shifted group", "other": "other group"}  # fmt: skip
    return write_breeds_info(info_dir, edges, classes, names)


def test_builder_reproduces_the_reference_on_a_small_hierarchy(tmp_path):
    hierarchy = read_hierarchy(_small_hierarchy(tmp_path), root="root")
    assert hierarchy.level["late"] == 2 and hierarchy.level["shifted"] == 3 and hierarchy.level["mid"] == 3
    assert "barren" not in hierarchy.level and "orphan" not in hierarchy.level
    assert sorted(hierarchy.leaves_reachable("zeta")) == [f"z{i}" for i in range(7)]
    superclasses = get_superclasses(hierarchy, level=2, n_subclasses=4, ancestor="life", random_seed=2)
    # expected output of robustness' get_superclasses(level=2, Nsubclasses=4, split=None, ancestor="life",
    # balanced=True, random_seed=2) on these files: sorted superclasses, RandomState(2).choice order
    assert [(sc.wnid, sc.name, [sub.wnid for sub in sc.subclasses]) for sc in superclasses] == [
        ("alpha", "alpha group", ["a2", "a3", "a1", "a0"]),
        ("late", "late", ["t4", "t1", "t0", "t2"]),
        ("x", "x group", ["s0", "s3", "s1", "s2"]),
        ("zeta", "zeta group, zetas", ["z1", "z4", "z6", "z0"]),
    ]
    assert [sub.imagenet_index for sub in superclasses[3].subclasses] == [1, 4, 6, 0]
    assert superclasses[3].subclasses[0].name == "class z1, synonym"
    # another seed draws differently; dropped superclasses draw nothing, so the first draw depends only on alpha
    other = get_superclasses(hierarchy, level=2, n_subclasses=4, ancestor="life", random_seed=3)
    assert [sub.wnid for sub in other[3].subclasses] != ["z1", "z4", "z6", "z0"]
    expected_first = [f"a{i}" for i in np.random.RandomState(2).permutation(4)]
    assert [sub.wnid for sub in superclasses[0].subclasses] == expected_first


def test_builder_on_the_living17_leaf_sets_gives_the_published_table(tmp_path):
    built = make_living17(write_living17_info(tmp_path))
    assert [sc.wnid for sc in built] == [sc.wnid for sc in LIVING17]
    for got, published in zip(built, LIVING17):
        assert [(s.wnid, s.imagenet_index) for s in got.subclasses] == [
            (s.wnid, s.imagenet_index) for s in published.subclasses
        ]
        assert got.name == f"{published.name}, synonym"


def test_builder_reports_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="dataset_class_info.json.*class_hierarchy.txt.*node_names.txt"):
        read_hierarchy(tmp_path)
    info_dir = Path(_small_hierarchy(tmp_path / "bad_line"))
    with open(info_dir / "class_hierarchy.txt", "a") as handle:
        handle.write("alpha a0 extra\n")
    with pytest.raises(ConfigError, match="line 44 must be 'parent child'"):
        read_hierarchy(info_dir, root="root")
    info_dir = Path(_small_hierarchy(tmp_path / "cycle"))
    with open(info_dir / "class_hierarchy.txt", "a") as handle:
        handle.write("zeta life\n")
    with pytest.raises(ConfigError, match="cycle"):
        read_hierarchy(info_dir, root="root")
    with pytest.raises(ConfigError, match="root n00001740"):
        read_hierarchy(_small_hierarchy(tmp_path / "root"))


def test_published_table_matches_imagenet_synsets():
    synsets = imagenet_synsets()
    subclasses = [sub for superclass in LIVING17 for sub in superclass.subclasses]
    assert len(LIVING17) == 17 and all(len(sc.subclasses) == 4 for sc in LIVING17)
    assert len({sub.wnid for sub in subclasses}) == 68
    for sub in subclasses:
        assert synsets[sub.imagenet_index] == sub.wnid, sub
    assert [sc.name for sc in LIVING17][:4] == ["salamander", "turtle", "lizard", "snake"]


# ------------------------------------------------------------------------------------------------ source
@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory) -> str:
    return write_fake_imagenet_living17(tmp_path_factory.mktemp("living17"), n_train_per_class=4, n_val_per_class=2)


def _source(root: str, **kwargs) -> Living17:
    options = {"image_size": 24, "resize": 32, "val_fraction": 0.25}
    options.update(kwargs)
    return Living17(root, **options)


def test_facts(imagenet_root):
    source = _source(imagenet_root)
    assert source.name == "breeds_living17"
    assert (
        source.num_classes == 17 and source.num_groups == 4 and source.group_names == ["sub0", "sub1", "sub2", "sub3"]
    )
    assert source.class_names[3] == "snake" and source.class_names[16] == "monkey"
    assert source.superclass_members[8] == ["bloodhound", "Pekinese", "Great Pyrenees", "papillon"]
    assert source.wnids[0][0] == "n01631663"
    assert source.image_shape == (3, 24, 24)


def test_labels_subgroups_and_shapes(imagenet_root):
    source = _source(imagenet_root)
    splits = source.load()
    assert {name: len(split) for name, split in splits.items()} == {"train": 204, "val": 68, "test": 136}
    assert source.counts["train"]["per_subclass"] == [[4] * 4] * 17
    cells = {(c, g) for c in range(17) for g in range(4)}
    for name, per_cell in (("train", 3), ("val", 1), ("test", 2)):
        split = splits[name]
        assert split.images is None  # decoded lazily
        assert Counter(zip(split.labels.tolist(), split.groups.tolist())) == dict.fromkeys(cells, per_cell)
        for path, label, group in zip(split.image_paths, split.labels.tolist(), split.groups.tolist()):
            assert Path(path).parent.name == LIVING17[label].subclasses[group].wnid
    assert set(splits["train"].image_paths).isdisjoint(splits["val"].image_paths)
    assert all("/train/" in p for p in splits["val"].image_paths)
    assert all("/val/" in p for p in splits["test"].image_paths)
    # the pixels say which (label, subgroup) folder an image came from
    for split in splits.values():
        for index in range(0, len(split), 9):
            image, label, group = split[index]["image"], split[index]["label"], split[index]["subgroup"]
            assert image.dtype == torch.uint8 and image.shape == (3, 24, 24)
            red, green = colour_of(int(label), int(group))
            assert abs(image[0].float().mean() - red) < 6 and abs(image[1].float().mean() - green) < 6
    batch = next(iter(DataLoader(splits["test"], batch_size=5)))
    assert set(batch) == {"image", "label", "subgroup"}  # no masks in BREEDS: no mask key
    assert batch["image"].shape == (5, 3, 24, 24) and batch["label"].shape == batch["subgroup"].shape == (5,)


@pytest.fixture(scope="module")
def landscape_root(tmp_path_factory) -> str:
    """A fake tree of 40 x 64 landscape photos plus one lossless 40 x 120 image striped red | green | blue."""
    root = write_fake_imagenet_living17(tmp_path_factory.mktemp("living17_views"), n_train_per_class=1,
                                        n_val_per_class=1, size=40, width=64)
    add_striped_living17_image(root, label=2, group=1)
    return root


def test_a_generator_sees_the_files_undistorted_and_the_classifiers_as_configured(landscape_root):
    source = Living17(landscape_root, image_size=16, resize=20, val_fraction=0.0)
    train = source.load()["train"]
    striped = [Path(p).stem for p in train.image_paths].index("n_striped")
    assert (int(train.labels[striped]), int(train.groups[striped])) == (2, 1)
    # Stable Diffusion's view: shorter side 40 -> 20, width 120 -> 60, centre 20 columns = original 40..79: green
    generator = train.viewed(ImageView.shorter_side(20))
    image, label, group = generator[striped]["image"], generator[striped]["label"], generator[striped]["subgroup"]
    assert image.shape == (3, 20, 20) and (int(label), int(group)) == (2, 1)
    assert (image[1] == 255).all() and (image[0] == 0).all() and (image[2] == 0).all()
    assert all(generator[i]["image"].shape == (3, 20, 20) for i in range(0, len(generator), 17))  # landscapes: square
    # the classifiers' view by default (ImageNet's evaluation preprocessing): shorter side 20, centre crop 16
    assert source.classifier_view == ImageView(size=16, resize=20)
    classifier_image = train[striped]["image"]
    assert classifier_image.shape == (3, 16, 16)
    assert (classifier_image[1] == 255).all() and (classifier_image[0] == 0).all()
    assert train.viewed(source.classifier_view) is train
    # squash: both sides resized (Hard ImageNet's preprocessing), so the red and blue stripes reach the borders
    squashed = Living17(landscape_root, image_size=16, resize=20, squash=True, val_fraction=0.0).load()["train"]
    squashed_image = squashed[striped]["image"]
    assert squashed_image.shape == (3, 16, 16)
    assert (squashed_image[0, :, 0] > 200).all() and (squashed_image[2, :, -1] > 200).all()


def test_generated_images_are_stored_as_rgb_squares(imagenet_root):
    source = _source(imagenet_root)
    source.check_stack_shape((3, 512, 512))
    source.check_stack_shape((3, 24, 24))
    for shape in ((3, 512, 256), (1, 64, 64)):
        with pytest.raises(ConfigError, match="BREEDS Living-17 stores generated images as RGB squares"):
            source.check_stack_shape(shape)


def test_the_oracle_cells_of_a_lazy_split(imagenet_root):
    train = _source(imagenet_root).load()["train"]
    cells = CellSplit(train, num_groups=4)
    assert cells.images is None and len(cells) == len(train)  # every real sample has its subclass
    assert torch.equal(cells.labels, train.labels * 4 + train.groups)
    assert Counter(cells.labels.tolist()) == dict.fromkeys(range(68), 3)
    for index in range(0, len(cells), 23):
        image, cell, group = cells[index]["image"], cells[index]["label"], cells[index]["subgroup"]
        label = int(cell) // 4
        assert int(group) == int(cell) % 4 == int(train.groups[index]) and label == int(train.labels[index])
        assert torch.equal(image, train[index]["image"])  # decoded by the underlying split, through its view
        red, green = colour_of(label, int(group))
        assert abs(image[0].float().mean() - red) < 6 and abs(image[1].float().mean() - green) < 6
    generator_cells = cells.viewed(ImageView.shorter_side(20))
    assert generator_cells[0]["image"].shape == (3, 20, 20) and torch.equal(generator_cells.labels, cells.labels)


def test_validation_carve_is_seeded_and_stratified_by_subclass(imagenet_root):
    first = _source(imagenet_root, seed=3).load()["val"]
    again = _source(imagenet_root, seed=3).load()["val"]
    other = _source(imagenet_root, seed=4).load()["val"]
    assert first.image_paths == again.image_paths and first.image_paths != other.image_paths
    assert Counter(zip(first.labels.tolist(), first.groups.tolist())) == {
        (c, g): 1 for c in range(17) for g in range(4)
    }
    half = _source(imagenet_root, val_fraction=0.5).load()
    assert len(half["val"]) == 136 and len(half["train"]) == 136


def test_max_per_class_caps_every_subclass(imagenet_root):
    splits = _source(imagenet_root, max_per_class=2, val_fraction=0.5).load()
    assert len(splits["train"]) == 68 and len(splits["val"]) == 68
    assert set(Counter(zip(splits["train"].labels.tolist(), splits["train"].groups.tolist())).values()) == {1}
    splits = _source(imagenet_root, max_per_class=1).load()
    assert len(splits["test"]) == 68 and len(splits["train"]) == 68 and len(splits["val"]) == 0


def test_info_dir_is_checked_against_the_published_table(imagenet_root, tmp_path):
    _source(imagenet_root, info_dir=write_living17_info(tmp_path / "good")).validate()
    bad = Path(write_living17_info(tmp_path / "bad"))
    lines = (bad / "class_hierarchy.txt").read_text().splitlines()
    dropped = imagenet_synsets()[151]  # one dog fewer: the seeded draws from the dog superclass on change
    (bad / "class_hierarchy.txt").write_text("\n".join(line for line in lines if not line.endswith(dropped)))
    with pytest.raises(ConfigError, match=r"do not rebuild the published Living-17 \(superclass 8 is"):
        _source(imagenet_root, info_dir=str(bad)).validate()


def test_validate_lists_every_missing_path_in_one_message(tmp_path):
    imagenet_root = Path(write_fake_imagenet_living17(tmp_path, n_train_per_class=1, n_val_per_class=1, size=8))
    info_dir = Path(write_living17_info(tmp_path / "info"))
    shutil.rmtree(imagenet_root / "val" / LIVING17[2].subclasses[1].wnid)
    shutil.rmtree(imagenet_root / "train" / LIVING17[9].subclasses[3].wnid)
    for image in (imagenet_root / "train" / LIVING17[0].subclasses[0].wnid).iterdir():
        image.unlink()
    (info_dir / "node_names.txt").unlink()
    (info_dir / "class_hierarchy.txt").unlink()
    with pytest.raises(ConfigError) as error:
        Living17(str(imagenet_root), info_dir=str(info_dir), val_fraction=1.5).validate()
    message = str(error.value)
    assert message.count("\n  - ") == 6
    assert "val_fraction" in message
    assert f"{info_dir / 'node_names.txt'} is missing" in message
    assert f"{info_dir / 'class_hierarchy.txt'} is missing" in message
    assert (
        f"{imagenet_root / 'val' / LIVING17[2].subclasses[1].wnid} (alligator lizard, subgroup 1 of lizard)" in message
    )
    assert f"{imagenet_root / 'train' / LIVING17[9].subclasses[3].wnid} (timber wolf, subgroup 3 of wolf)" in message
    assert (
        f"{imagenet_root / 'train' / LIVING17[0].subclasses[0].wnid} (eft, subgroup 0 of salamander) has no image"
        in message
    )
    assert "image-net.org" in message and "github.com/MadryLab/BREEDS-Benchmarks" in message


def test_validate_reports_missing_root_and_split_folder(tmp_path):
    missing = tmp_path / "no_imagenet"
    with pytest.raises(ConfigError) as error:
        Living17(str(missing), info_dir=str(tmp_path / "no_info")).validate()
    message = str(error.value)
    assert f"imagenet_root {missing} does not exist" in message and f"info_dir {tmp_path / 'no_info'}" in message
    assert message.count("\n  - ") == 2 and "image-net.org" in message
    (tmp_path / "only_train" / "train").mkdir(parents=True)
    with pytest.raises(ConfigError) as error:
        Living17(str(tmp_path / "only_train")).validate()
    message = str(error.value)
    assert f"ImageNet split folder {tmp_path / 'only_train' / 'val'} is missing" in message
    # the split folder exists but is empty: each of the 68 class folders is named
    assert message.count("\n  - ") == 69


def test_bad_arguments_are_config_errors(imagenet_root):
    with pytest.raises(ConfigError, match="resize"):
        _source(imagenet_root, resize=16, image_size=24).validate()
    with pytest.raises(ConfigError, match="test_split"):
        _source(imagenet_root, test_split="train").load()
    with pytest.raises(ConfigError, match="max_per_class"):
        _source(imagenet_root, max_per_class=0).validate()


def test_no_file_is_unpickled(imagenet_root, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a BREEDS or ImageNet file was unpickled")

    class RefusingUnpickler:
        def __init__(self, *args, **kwargs):
            refuse()

    for module, name in ((pickle, "load"), (pickle, "loads"), (torch, "load"), (np, "load")):
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(pickle, "Unpickler", RefusingUnpickler)
    source = _source(imagenet_root, info_dir=write_living17_info(tmp_path))
    splits = source.load()
    assert splits["test"][0]["image"].shape == (3, 24, 24)
