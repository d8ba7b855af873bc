"""The view store: real images decoded once into a checksummed uint8 memory map that reads like the files."""

from __future__ import annotations

import logging

import pytest
import torch

from common.image_views import ImageView
from datamodules.generational import GenerationalDataModule
from datamodules.hard_imagenet import HardImageNet
from datamodules.view_store import StoredSplit, ViewStore, store_bytes, store_key
from tests.fakes.hard_imagenet import write_fake_hard_imagenet


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    return write_fake_hard_imagenet(tmp_path_factory.mktemp("fake_hin"), n_train_per_class=2, n_val_per_class=1,
                                    size=40, width=52)


def splits(roots, **kwargs):
    source = HardImageNet(*roots, image_size=24, resize=28, val_fraction=0.0, **kwargs)
    source.validate()
    return source.load()


def test_a_stored_split_reads_exactly_what_decoding_the_files_gives(roots, tmp_path):
    files = splits(roots)["train"]
    store = ViewStore(tmp_path)
    stored = store.stored(files)
    assert isinstance(stored, StoredSplit) and store.decoded == len(files) == 30
    assert stored.images.dtype == torch.uint8 and tuple(stored.images.shape) == (30, 3, 24, 24)
    for index in (0, 7, 29):
        expected, got = files[index], stored[index]
        assert torch.equal(got["image"], expected["image"]) and got["label"] == expected["label"]
        assert got["subgroup"] == expected["subgroup"] and got["mask"].dtype == torch.bool
        assert torch.equal(got["mask"], expected["mask"])
    assert torch.equal(stored.labels, files.labels) and stored.image_paths == files.image_paths
    # other views (a generator's, Inception's) read the files again
    assert stored.viewed(stored.view) is stored
    other = ImageView.shorter_side(16)
    assert torch.equal(stored.viewed(other)[3]["image"], files.viewed(other)[3]["image"])


def test_a_second_open_decodes_nothing(roots, tmp_path):
    files = splits(roots)["train"]
    ViewStore(tmp_path).stored(files)
    again = ViewStore(tmp_path)
    stored = again.stored(files)
    assert again.decoded == 0 and torch.equal(stored.images[3], files[3]["image"])


def test_a_corrupted_store_is_detected_by_its_checksum_and_rebuilt_with_one_log_line(roots, tmp_path, caplog):
    files = splits(roots)["train"]
    ViewStore(tmp_path).stored(files)
    images_file = tmp_path / f"{store_key(files, files.view)}.images.npy"
    data = bytearray(images_file.read_bytes())
    data[-5] ^= 0xFF
    images_file.write_bytes(bytes(data))
    store = ViewStore(tmp_path)
    with caplog.at_level(logging.INFO, logger="datamodules.view_store"):
        stored = store.stored(files)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"view store {images_file} does not match its checksum (images): decoding its 30 images again"]
    assert caplog.records[0].levelno == logging.WARNING
    assert store.decoded == 30 and torch.equal(stored.images[29], files[29]["image"])


def test_an_unfinished_store_is_built_again(roots, tmp_path):
    files = splits(roots)["train"]
    ViewStore(tmp_path).stored(files)
    (tmp_path / f"{store_key(files, files.view)}.json").unlink()  # the manifest is written last
    store = ViewStore(tmp_path)
    store.stored(files)
    assert store.decoded == 30


def test_the_key_follows_the_files_and_the_view(roots):
    train = splits(roots)["train"]
    assert store_key(train, train.view) == store_key(splits(roots)["train"], train.view)  # another run, same data
    assert store_key(train, train.view) != store_key(train, ImageView(24, resize=32, squash=True))
    assert store_key(train, train.view) != store_key(splits(roots, max_per_class=1)["train"], train.view)


def test_the_data_module_reads_every_file_split_from_the_store_and_can_turn_it_off(roots, tmp_path):
    source = HardImageNet(*roots, image_size=24, resize=28, val_fraction=0.5)
    data = GenerationalDataModule(source, view_store_dir=str(tmp_path / "views"))
    data.validate()
    assert all(isinstance(split, StoredSplit) for split in data.prepare().values())
    batch = next(iter(data.eval_loader("test")))
    assert set(batch) == {"image", "label", "subgroup", "mask"} and batch["mask"].dtype == torch.bool  # ablations
    off = GenerationalDataModule(source, view_store=False, view_store_dir=str(tmp_path / "off"))
    assert not any(isinstance(split, StoredSplit) for split in off.prepare().values())
    assert not (tmp_path / "off").exists()
    nowhere = GenerationalDataModule(source)  # outside a run and without a folder: nothing is stored
    assert not any(isinstance(split, StoredSplit) for split in nowhere.prepare().values())


def test_store_bytes_known_answers():
    assert store_bytes(1000, 224, masks=False) == 1000 * 150_528
    assert store_bytes(1000, 224, masks=True) == 1000 * 200_704


def test_processes_opening_a_missing_store_at_once_build_it_once(roots, tmp_path):
    """One builder under the lock file; the others wait and then read its store (two threads: flock excludes each
    open of the lock file, as it excludes DDP ranks and parallel runs)."""
    import threading

    files = splits(roots)["train"]
    stores = [ViewStore(tmp_path), ViewStore(tmp_path)]
    results = [None, None]

    def open_store(i: int) -> None:
        results[i] = stores[i].stored(files)

    threads = [threading.Thread(target=open_store, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(store.decoded for store in stores) == [0, 30]
    assert all(torch.equal(result.images[5], files[5]["image"]) for result in results)


def test_a_stored_split_pickles_without_its_rows(roots, tmp_path):
    import pickle

    stored = ViewStore(tmp_path).stored(splits(roots)["train"])
    payload = pickle.dumps(stored)
    assert len(payload) < stored.images.numel() // 4  # a spawned loader worker gets paths, not pixels
    again = pickle.loads(payload)
    assert torch.equal(again.images, stored.images) and torch.equal(again[4]["mask"], stored[4]["mask"])


def test_the_mixer_and_the_cells_read_a_stored_split_in_place(roots, tmp_path):
    """Neither joins nor gathers the memory-mapped rows into RAM (Living-17's store is ~13 GiB)."""
    from datamodules.base import CellSplit
    from datamodules.mixing import MixedTrainSet
    from datamodules.stack import SyntheticStack

    stored = ViewStore(tmp_path / "views").stored(splits(roots)["train"])
    stack = SyntheticStack(tmp_path / "stack", max_generations=3)
    stack.push(torch.zeros((4, 3, 24, 24), dtype=torch.uint8), torch.tensor([0, 1, 2, 3]), 1)
    mixed = MixedTrainSet(stored, stack, stack_view=ImageView(24))  # the stack already in the classifiers' view
    assert mixed.joined is None
    batch = mixed.__getitems__([31, 2, 30])
    images, labels = batch["image"], batch["label"]
    assert torch.equal(images[0], stored.images[2]) and labels.tolist() == [stored.labels[2].item(), 1, 0]
    stored.groups = torch.zeros_like(stored.groups)  # every subgroup known: every sample is a cell
    assert CellSplit(stored, num_groups=1).images is stored.images


def test_the_bytes_still_to_build_are_each_unbuilt_splits_and_none_once_built(roots, tmp_path):
    source = HardImageNet(*roots, image_size=24, resize=28, val_fraction=0.5)
    data = GenerationalDataModule(source, view_store_dir=str(tmp_path / "views"))
    data.validate()
    # the fake tree: 15 classes x (2 train + 1 val) masked images, at 24 x 24: RGB and a mask byte a pixel
    assert data.view_store_to_build() == 45 * 24 * 24 * 4
    assert not (tmp_path / "views").exists()  # asking writes nothing
    data.prepare()
    assert data.view_store_to_build() == 0
    assert GenerationalDataModule(source, view_store=False, view_store_dir=str(tmp_path / "v")).view_store_to_build() \
        == 0
