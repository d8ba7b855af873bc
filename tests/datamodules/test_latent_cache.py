"""The latent cache: chunks built once, by rank share, checked by checksum, read back by index like the stack."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from common.image_views import ImageView
from datamodules.base import ImageSplit
from datamodules.latent_cache import LatentCache, LatentPart, identity_key, real_split_identity
from datamodules.stack import SyntheticStack

VIEW = ImageView(8)


def fake_moments(images: torch.Tensor) -> torch.Tensor:
    """A stand-in encoder with a known answer: 'mean' = the image / 255, 'std' = 1 + the label-free pixel sum."""
    mean = images.float()[:, :2] / 255
    std = 1 + images.float().sum(dim=(1, 2, 3), keepdim=True).expand_as(mean) / 1e4
    return torch.cat([mean, std], dim=1)


class CountingEncoder:
    def __init__(self) -> None:
        self.images = 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.images += len(images)
        return fake_moments(images)


def real_split(n: int = 11, seed: int = 0) -> ImageSplit:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8)
    return ImageSplit(images, torch.arange(n) % 3, torch.arange(n) % 2)


def prepare(cache: LatentCache, real, stack=None, encoder=None, rank=0, world=1, identity=None) -> int:
    return cache.prepare(real, real_split_identity(real), stack, VIEW, identity or {"vae": "tiny"},
                         encoder or CountingEncoder(), batch_size=4, rank=rank, world_size=world)


def test_the_training_set_reads_each_sample_s_moments_by_its_index(tmp_path):
    real = real_split()
    stack = SyntheticStack(tmp_path / "stack", max_generations=3)
    stack.push(torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8), torch.tensor([0, 1, 2, 0, 1]), 1)
    stack.push(torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8), torch.tensor([2, 2, 1, 0]), 2)
    cache = LatentCache(tmp_path / "latents", chunk_size=3)
    encoder = CountingEncoder()
    assert prepare(cache, real, stack, encoder) == 11 + 9 == encoder.images
    mixed = cache.training_set
    assert (mixed.n_real, mixed.n_stack) == (11, 9)
    order = [14, 3, 19, 0, 10, 11]  # real and synthetic, across chunks and blocks, in any order
    batch = mixed.__getitems__(order)
    moments, labels, groups = batch["image"], batch["label"], batch["subgroup"]
    real_ids, stack_ids = [3, 0, 10], [14 - 11, 19 - 11, 11 - 11]
    stack_images, stack_labels = stack.get_batch(torch.tensor(stack_ids))
    expected = torch.cat([fake_moments(real.images[real_ids]), fake_moments(stack_images)])  # real first, as images
    assert torch.equal(moments, expected)
    assert labels.tolist() == real.labels[real_ids].tolist() + stack_labels.tolist()
    assert groups.tolist() == real.groups[real_ids].tolist() + [-1, -1, -1]


def test_a_second_prepare_encodes_nothing_and_chunks_are_plain_safetensors(tmp_path):
    real = real_split()
    cache = LatentCache(tmp_path, chunk_size=4)
    assert prepare(cache, real) == 11
    again = CountingEncoder()
    assert prepare(LatentCache(tmp_path, chunk_size=4), real, encoder=again) == 0 == again.images
    chunks = sorted(tmp_path.glob("real-*.safetensors"))
    assert len(chunks) == 3 and len(list(tmp_path.glob("*.sha256"))) == 3
    rows = torch.cat([load_file(path)["rows"] for path in chunks])
    assert torch.equal(rows, fake_moments(real.images))


def test_ranks_build_disjoint_shares_that_together_cover_every_image(tmp_path):
    real = real_split(n=10)
    part = LatentPart("real", identity_key({"any": 1}), len(real))
    counts = [LatentCache(tmp_path, chunk_size=3).build(part, real, fake_moments, 4, rank=rank, world_size=2)
              for rank in (0, 1)]
    assert counts == [3 + 3, 3 + 1]  # chunks 0 and 2 on rank 0, chunks 1 and 3 on rank 1
    assert torch.equal(LatentCache(tmp_path, chunk_size=3).open(part).gather(torch.arange(10)),
                       fake_moments(real.images))


def test_a_killed_build_resumes_at_its_unfinished_chunk(tmp_path):
    real = real_split()
    prepare(LatentCache(tmp_path, chunk_size=4), real)
    unfinished = sorted(tmp_path.glob("real-*.safetensors"))[1]
    unfinished.with_name(unfinished.name + ".sha256").unlink()  # the checksum is written last: killed before it
    encoder = CountingEncoder()
    assert prepare(LatentCache(tmp_path, chunk_size=4), real, encoder=encoder) == 4 == encoder.images


def test_a_corrupted_chunk_is_detected_by_its_checksum_and_rebuilt_with_one_log_line(tmp_path, caplog):
    real = real_split()
    prepare(LatentCache(tmp_path, chunk_size=4), real)
    corrupted = sorted(tmp_path.glob("real-*.safetensors"))[2]
    data = bytearray(corrupted.read_bytes())
    data[-1] ^= 0xFF
    corrupted.write_bytes(bytes(data))
    cache = LatentCache(tmp_path, chunk_size=4)
    with caplog.at_level(logging.INFO, logger="datamodules.latent_cache"):
        assert prepare(cache, real) == 3  # the last chunk holds images 8-10
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"latent cache chunk {corrupted} does not match its checksum: encoding it again"]
    assert torch.equal(cache.training_set.__getitems__([8, 9, 10])["image"], fake_moments(real.images[8:]))


def test_other_settings_get_their_own_part_and_stale_parts_are_removed(tmp_path):
    real = real_split()
    prepare(LatentCache(tmp_path, chunk_size=4), real, identity={"vae": "a"})
    old = set(tmp_path.iterdir())
    encoder = CountingEncoder()
    prepare(LatentCache(tmp_path, chunk_size=4), real, encoder=encoder, identity={"vae": "b"})
    assert encoder.images == 11  # another encoder: nothing reused
    assert not old & set(tmp_path.iterdir())  # the first encoder's chunks are gone


def test_an_evicted_block_s_latents_are_deleted(tmp_path):
    real = real_split()
    stack = SyntheticStack(tmp_path / "stack", max_generations=1)
    stack.push(torch.zeros((2, 3, 8, 8), dtype=torch.uint8), torch.tensor([0, 1]), 1)
    cache = LatentCache(tmp_path / "latents")
    prepare(cache, real, stack)
    stack.push(torch.ones((3, 3, 8, 8), dtype=torch.uint8), torch.tensor([0, 1, 2]), 2)  # evicts generation 1
    assert prepare(cache, real, stack) == 3
    names = sorted(path.name.split("-")[0] for path in (tmp_path / "latents").glob("*.safetensors"))
    assert names == ["block0002", "real"]


def test_part_keys_depend_on_everything_the_latents_depend_on():
    a = identity_key({"view": [8, None, False], "encoder": {"vae": "x"}, "real": {"count": 3}})
    assert a == identity_key({"real": {"count": 3}, "encoder": {"vae": "x"}, "view": [8, None, False]})
    assert a != identity_key({"view": [8, 9, False], "encoder": {"vae": "x"}, "real": {"count": 3}})
    assert LatentPart("real", a, 10).chunk_ranges(4) == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(ValueError, match="names neither its files"):
        real_split_identity(type("Lazy", (), {"images": None, "labels": np.zeros(2)})())
