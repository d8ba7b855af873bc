"""The on-disk FIFO stack: whole-block eviction, reopening, corruption checks, batch reads, pickling."""

from __future__ import annotations

import json
import logging
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from common.errors import ConfigError
from datamodules.stack import SyntheticStack

SHAPE = (3, 4, 5)


def make_block(generation: int, count: int, shape: tuple[int, int, int] = SHAPE):
    """Seeded images whose first pixel encodes (generation, row), so every sample is recognisable."""
    g = torch.Generator().manual_seed(generation)
    images = torch.randint(0, 256, (count, *shape), dtype=torch.uint8, generator=g)
    images[:, 0, 0, 0] = generation
    images[:, 0, 0, 1] = torch.arange(count, dtype=torch.uint8)
    labels = torch.randint(0, 10, (count,), generator=g)
    return images, labels


def expected_contents(generations: list[int], sizes: dict[int, int]):
    blocks = [make_block(g, sizes[g]) for g in generations]
    return torch.cat([b[0] for b in blocks]), torch.cat([b[1] for b in blocks])


def assert_matches(stack: SyntheticStack, images: torch.Tensor, labels: torch.Tensor) -> None:
    assert len(stack) == len(images)
    for i in range(len(stack)):
        image, label = stack[i]
        assert image.dtype == torch.uint8 and image.shape == SHAPE
        assert torch.equal(image, images[i])
        assert isinstance(label, int) and label == int(labels[i])
    assert torch.equal(stack.labels, labels)
    assert stack.labels.dtype == torch.int64


def test_fifo_evicts_oldest_whole_blocks(tmp_path):
    stack = SyntheticStack(tmp_path, max_generations=3)
    for generation in range(1, 6):
        stack.push(*make_block(generation, 8), generation=generation)
        assert len(stack) == 8 * min(generation, 3)
    assert stack.generations == [3, 4, 5]
    assert stack.block_sizes == [8, 8, 8]
    assert_matches(stack, *expected_contents([3, 4, 5], {3: 8, 4: 8, 5: 8}))
    assert stack[-1][0][0, 0, 0] == 5 and stack[0][0][0, 0, 0] == 3
    # evicted blocks' files are gone; only the held blocks and the manifest remain
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(
        ["manifest.json"] + [f"gen_{g:04d}_{k}.npy" for g in (3, 4, 5) for k in ("images", "labels")]
    )
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest == stack.manifest
    assert [b["generation"] for b in manifest["blocks"]] == [3, 4, 5]
    assert all(b["count"] == 8 and b["shape"] == list(SHAPE) for b in manifest["blocks"])
    assert all(len(e["sha256"]) == 64 for b in manifest["blocks"] for e in b["files"].values())
    # the images file is a raw uint8 .npy that numpy can memory-map
    mapped = np.load(tmp_path / "gen_0005_images.npy", mmap_mode="r")
    assert isinstance(mapped, np.memmap) and mapped.dtype == np.uint8
    assert np.array_equal(mapped, make_block(5, 8)[0].numpy())


def test_the_stack_keeps_the_last_k_generations_whatever_the_filters_kept(tmp_path):
    """The paper's queue of capacity D/S = 3 generations: with r = 0.6 a block is 40% of S, and still only the last
    3 generations are kept (a capacity counted in samples would hold all 5)."""
    stack = SyntheticStack(tmp_path, max_generations=3)
    kept = {1: 40, 2: 38, 3: 41, 4: 40, 5: 39}  # S = 100 minus the 60% dropped (per-class rounding varies)
    for generation, size in kept.items():
        stack.push(*make_block(generation, size), generation=generation)
    assert stack.generations == [3, 4, 5]
    assert len(stack) == 41 + 40 + 39


def test_sample_budget_evicts_further_oldest_blocks(tmp_path):
    stack = SyntheticStack(tmp_path, max_generations=3, max_samples=25)
    for generation in (1, 2, 3):
        stack.push(*make_block(generation, 10), generation=generation)
        assert len(stack.generations) == min(generation, 2)  # 3 blocks of 10 exceed the budget of 25
    assert stack.generations == [2, 3]


def test_block_larger_than_the_sample_budget_is_a_config_error(tmp_path):
    stack = SyntheticStack(tmp_path, max_generations=None, max_samples=10)
    with pytest.raises(ConfigError, match=r"11 samples.*sample budget 10.*raise data.regime.capacity"):
        stack.push(*make_block(1, 11), generation=1)
    assert len(stack) == 0 and stack.generations == []
    assert not list(tmp_path.glob("gen_*"))
    with pytest.raises(ConfigError, match="positive"):
        SyntheticStack(tmp_path / "other", max_generations=0)
    with pytest.raises(ConfigError, match="positive"):
        SyntheticStack(tmp_path / "other", max_generations=3, max_samples=0)


def test_push_rejects_duplicate_generation_and_wrong_shape(tmp_path):
    stack = SyntheticStack(tmp_path, max_generations=None, max_samples=100)
    stack.push(*make_block(1, 4), generation=1)
    with pytest.raises(ValueError, match="generation 1 is already in the stack"):
        stack.push(*make_block(1, 4), generation=1)
    with pytest.raises(ValueError, match=r"shape \(1, 4, 5\).*holds \(3, 4, 5\)"):
        stack.push(*make_block(2, 4, shape=(1, 4, 5)), generation=2)
    with pytest.raises(ValueError, match="uint8"):
        stack.push(torch.zeros(4, *SHAPE), torch.zeros(4, dtype=torch.long), generation=3)
    with pytest.raises(ValueError, match="labels"):
        stack.push(make_block(3, 4)[0], torch.zeros(3, dtype=torch.long), generation=3)
    assert stack.generations == [1]


def test_reopen_equals_original(tmp_path):
    stack = SyntheticStack(tmp_path, max_generations=None, max_samples=20)
    for generation, size in ((1, 7), (2, 5), (3, 6)):
        images, labels = make_block(generation, size)
        stack.push(images, labels, generation=generation)
    reopened = SyntheticStack(tmp_path, max_generations=None, max_samples=20)
    assert reopened.generations == stack.generations == [1, 2, 3]
    assert reopened.block_sizes == [7, 5, 6]
    assert reopened.manifest == stack.manifest
    assert_matches(reopened, *expected_contents([1, 2, 3], {1: 7, 2: 5, 3: 6}))
    # the reopened stack keeps working as a FIFO
    reopened.push(*make_block(4, 6), generation=4)
    assert reopened.generations == [2, 3, 4]


def test_reopen_with_smaller_capacity_evicts_oldest_with_warning(tmp_path, caplog):
    stack = SyntheticStack(tmp_path, max_generations=None, max_samples=30)
    for generation in (1, 2, 3):
        stack.push(*make_block(generation, 10), generation=generation)
    with caplog.at_level(logging.WARNING, logger="datamodules.stack"):
        smaller = SyntheticStack(tmp_path, max_generations=None, max_samples=15)
    assert smaller.generations == [3]
    assert "15 samples" in caplog.text
    assert not (tmp_path / "gen_0001_images.npy").exists()
    assert SyntheticStack(tmp_path, max_generations=None, max_samples=15).generations == [3]


def test_corrupted_file_is_named(tmp_path):
    stack = SyntheticStack(tmp_path, max_generations=None, max_samples=50)
    stack.push(*make_block(1, 6), generation=1)
    stack.push(*make_block(2, 6), generation=2)
    path = tmp_path / "gen_0002_images.npy"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip one pixel byte; the header stays valid
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"gen_0002_images\.npy.*corrupted"):
        SyntheticStack(tmp_path, max_generations=None, max_samples=50)
    # verify=False (non-zero DDP ranks) trusts the manifest and reads the bytes as they are
    unverified = SyntheticStack(tmp_path, max_generations=None, max_samples=50, verify=False)
    assert unverified.generations == [1, 2]
    assert not torch.equal(unverified[-1][0], make_block(2, 6)[0][-1])


def test_missing_file_is_named(tmp_path):
    stack = SyntheticStack(tmp_path, max_generations=None, max_samples=50)
    stack.push(*make_block(1, 6), generation=1)
    (tmp_path / "gen_0001_labels.npy").unlink()
    with pytest.raises(ConfigError, match=r"gen_0001_labels\.npy.*missing"):
        SyntheticStack(tmp_path, max_generations=None, max_samples=50)


def test_files_not_in_manifest_are_ignored_then_removed_by_push(tmp_path):
    """A crash after writing a block's files but before the manifest leaves strays: the manifest wins."""
    stack = SyntheticStack(tmp_path, max_generations=None, max_samples=50)
    stack.push(*make_block(1, 4), generation=1)
    np.save(tmp_path / "gen_0002_images.npy", make_block(2, 4)[0].numpy())
    (tmp_path / ".tmp-abc.part").write_bytes(b"half written")
    (tmp_path / "notes.txt").write_text("not ours")
    reopened = SyntheticStack(tmp_path, max_generations=None, max_samples=50)
    assert reopened.generations == [1] and len(reopened) == 4
    reopened.push(*make_block(3, 4), generation=3)
    assert not (tmp_path / "gen_0002_images.npy").exists()
    assert not (tmp_path / ".tmp-abc.part").exists()
    assert (tmp_path / "notes.txt").exists()
    assert SyntheticStack(tmp_path, max_generations=None, max_samples=50).generations == [1, 3]


def test_get_batch_equals_item_access_in_any_order(tmp_path):
    stack = SyntheticStack(tmp_path, max_generations=None, max_samples=40)
    for generation, size in ((1, 9), (2, 4), (3, 11)):
        stack.push(*make_block(generation, size), generation=generation)
    g = torch.Generator().manual_seed(0)
    indices = torch.cat([torch.randperm(len(stack), generator=g), torch.tensor([5, 5, 23, 0, -1])])
    images, labels = stack.get_batch(indices)
    assert images.shape == (len(indices), *SHAPE) and images.dtype == torch.uint8
    for row, index in enumerate(indices.tolist()):
        image, label = stack[index]
        assert torch.equal(images[row], image)
        assert int(labels[row]) == label
    empty_images, empty_labels = stack.get_batch(torch.zeros(0, dtype=torch.long))
    assert empty_images.shape == (0, *SHAPE) and empty_labels.shape == (0,)
    with pytest.raises(IndexError, match="24"):
        stack.get_batch(torch.tensor([0, 24]))


def test_pickle_round_trip_and_dataloader_workers(tmp_path):
    stack = SyntheticStack(tmp_path, max_generations=None, max_samples=600)
    for generation in (1, 2):
        stack.push(*make_block(generation, 300), generation=generation)
    _ = stack[0], stack[-1]  # open both memory maps in this process
    state = pickle.dumps(stack)
    images, labels = expected_contents([1, 2], {1: 300, 2: 300})
    assert len(state) < images.numel() // 3  # images stay on disk (36 kB), only labels and the manifest travel
    clone = pickle.loads(state)
    assert clone.generations == [1, 2]
    assert_matches(clone, images, labels)
    loader = DataLoader(stack, batch_size=64, num_workers=1, shuffle=False)
    batches = list(loader)
    assert torch.equal(torch.cat([b[0] for b in batches]), images)
    assert torch.equal(torch.cat([b[1] for b in batches]), labels)


def test_uneven_blocks_evict_whole_blocks(tmp_path):
    """Filtered blocks are smaller than S: eviction still drops whole blocks until the new one fits."""
    stack = SyntheticStack(tmp_path, max_generations=None, max_samples=30)
    sizes = {1: 10, 2: 7, 3: 9, 4: 10, 5: 4}
    stack.push(*make_block(1, 10), generation=1)
    stack.push(*make_block(2, 7), generation=2)
    stack.push(*make_block(3, 9), generation=3)
    assert stack.generations == [1, 2, 3] and len(stack) == 26
    stack.push(*make_block(4, 10), generation=4)  # 36 > 30: evict block 1 only -> 26
    assert stack.generations == [2, 3, 4] and stack.block_sizes == [7, 9, 10]
    stack.push(*make_block(5, 4), generation=5)  # 30 fits exactly: nothing evicted
    assert stack.generations == [2, 3, 4, 5] and len(stack) == 30
    assert_matches(stack, *expected_contents([2, 3, 4, 5], sizes))
    stack.push(*make_block(6, 30), generation=6)  # a full-capacity block evicts everything else
    assert stack.generations == [6] and len(stack) == 30


def test_small_stacks_are_held_in_memory_large_ones_read_with_pread_same_batches(tmp_path, monkeypatch):
    import datamodules.stack as stack_module

    g = torch.Generator().manual_seed(5)
    stack = SyntheticStack(tmp_path / "pread", max_generations=None, max_samples=30)
    for generation, n in ((1, 10), (2, 12)):
        stack.push(torch.randint(0, 256, (n, 3, 4, 4), generator=g, dtype=torch.uint8), torch.arange(n) % 3,
                   generation)
    indices = torch.tensor([21, 0, 5, 5, 13, 9, 11])
    via_memory = stack.get_batch(indices)
    assert stack.images_in_memory() is not None and len(stack.images_in_memory()) == 22
    monkeypatch.setattr(stack_module, "IN_MEMORY_LIMIT_BYTES", 0)
    assert stack.images_in_memory() is None
    via_pread = stack.get_batch(indices)
    assert torch.equal(via_pread[0], via_memory[0]) and torch.equal(via_pread[1], via_memory[1])
    for row, index in enumerate(indices.tolist()):
        assert torch.equal(via_pread[0][row], stack[index][0])


def test_in_memory_copy_follows_pushes_and_evictions(tmp_path):
    stack = SyntheticStack(tmp_path / "cache", max_generations=None, max_samples=20)
    stack.push(torch.full((10, 1, 2, 2), 1, dtype=torch.uint8), torch.zeros(10, dtype=torch.long), 1)
    assert stack.get_batch(torch.tensor([0]))[0].unique().tolist() == [1]
    stack.push(torch.full((10, 1, 2, 2), 2, dtype=torch.uint8), torch.zeros(10, dtype=torch.long), 2)
    stack.push(torch.full((10, 1, 2, 2), 3, dtype=torch.uint8), torch.zeros(10, dtype=torch.long), 3)  # evicts 1
    assert stack.generations == [2, 3]
    assert stack.get_batch(torch.tensor([0, 19]))[0].flatten(1)[:, 0].tolist() == [2, 3]
