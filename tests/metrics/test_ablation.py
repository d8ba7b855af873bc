"""Hard ImageNet ablations: exact pixel effects, per-image batching, and accuracy bookkeeping."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader

from common.samples import make_batch
from metrics.ablation import (
    ABLATION_KINDS,
    ablate,
    ablation_counts,
    ablation_summary,
    bounding_boxes,
    gray_box,
    gray_object,
    tile_box,
)


def _random_images(batch: int, size: int = 20, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _masks(size: int = 20) -> torch.Tensor:
    """Five different masks: small box, L shape, bottom band, single pixel, empty."""
    masks = torch.zeros(5, 1, size, size, dtype=torch.bool)
    masks[0, 0, 2:5, 3:9] = True
    masks[1, 0, 4:16, 4] = True
    masks[1, 0, 15, 4:16] = True
    masks[2, 0, 10:20, :] = True
    masks[3, 0, 7, 11] = True
    return masks


def test_bounding_boxes():
    boxes = bounding_boxes(_masks())
    expected = [[2, 3, 5, 9], [4, 4, 16, 16], [10, 0, 20, 20], [7, 11, 8, 12], [0, 0, 0, 0]]
    assert boxes.dtype == torch.int64 and boxes.tolist() == expected
    assert bounding_boxes(_masks().to(torch.uint8)).tolist() == expected


def test_gray_object_is_exact():
    images, masks = _random_images(5), _masks()
    out = gray_object(images, masks)
    object_pixels = masks.expand_as(images)
    assert (out[object_pixels] == 0.5).all()
    assert torch.equal(out[~object_pixels], images[~object_pixels])
    assert torch.equal(out[4], images[4])  # empty mask: unchanged


def test_gray_box_is_exact():
    images, masks = _random_images(5), _masks()
    out = gray_box(images, masks)
    for b, (y0, x0, y1, x1) in enumerate(bounding_boxes(masks).tolist()):
        inside = torch.zeros(20, 20, dtype=torch.bool)
        inside[y0:y1, x0:x1] = True
        assert (out[b][:, inside] == 0.5).all()
        assert torch.equal(out[b][:, ~inside], images[b][:, ~inside])
    # the L shape's box also grays context pixels that are not object pixels
    assert out[1, :, 5, 10].eq(0.5).all() and not masks[1, 0, 5, 10]
    assert torch.equal(out[4], images[4])


def _assert_valid_tile(original: torch.Tensor, tiled: torch.Tensor, mask: torch.Tensor) -> tuple[int, int]:
    """The box holds a copy of some in-image, object-free region; everything else is untouched. Returns its corner."""
    size = original.shape[-1]
    y0, x0, y1, x1 = bounding_boxes(mask[None])[0].tolist()
    h, w = y1 - y0, x1 - x0
    outside = torch.ones(size, size, dtype=torch.bool)
    outside[y0:y1, x0:x1] = False
    assert torch.equal(tiled[:, outside], original[:, outside])
    content = tiled[:, y0:y1, x0:x1]
    sources = [
        (ty, tx)
        for ty in range(size - h + 1)
        for tx in range(size - w + 1)
        if torch.equal(original[:, ty : ty + h, tx : tx + w], content)
    ]
    assert len(sources) == 1  # random pixels: the copied region is unique
    ty, tx = sources[0]
    assert not mask[0, ty : ty + h, tx : tx + w].any()
    return ty, tx


def test_tile_box_copies_the_nearest_object_free_region():
    images, masks = _random_images(5), _masks()
    out, fallback = tile_box(images, masks)
    assert fallback.tolist() == [False] * 5
    corners = [_assert_valid_tile(images[b], out[b], masks[b]) for b in range(4)]
    # box (2,3)-(5,9): left and above leave the image; below (shift 3) is nearer than right (shift 6)
    assert corners[0] == (5, 3)
    # L shape, box (4,4)-(16,16): no adjacent box fits, the scan finds the object-free (3,5) region
    assert corners[1] == (3, 5)
    # bottom band: only the region above is free
    assert corners[2] == (0, 0)
    # single pixel: the adjacent left pixel
    assert corners[3] == (7, 10)
    assert torch.equal(out[4], images[4])  # empty mask: unchanged, no fallback


def test_tile_box_prefers_an_adjacent_region_to_a_nearer_scanned_one():
    # the same L shape in a wider image: the right-hand box fits, and wins over the closer scanned (3, 5)
    images = _random_images(1, size=30)
    masks = torch.zeros(1, 1, 30, 30, dtype=torch.bool)
    masks[0, 0, 4:16, 4] = True
    masks[0, 0, 15, 4:16] = True
    out, fallback = tile_box(images, masks)
    assert not fallback[0]
    assert _assert_valid_tile(images[0], out[0], masks[0]) == (4, 16)


def test_tile_box_falls_back_to_gray_when_nothing_fits():
    images = _random_images(2)
    masks = torch.zeros(2, 1, 20, 20, dtype=torch.bool)
    masks[0] = True  # the whole image is object
    masks[1, 0, [0, 0, 19, 19], [0, 19, 0, 19]] = True  # four corners: the box is the whole image
    out, fallback = tile_box(images, masks)
    assert fallback.tolist() == [True, True]
    assert (out == 0.5).all()


def test_every_image_of_a_batch_is_treated_like_alone():
    images, masks = _random_images(5, seed=1), _masks()
    masks = torch.cat([masks, torch.ones(1, 1, 20, 20, dtype=torch.bool)])
    images = torch.cat([images, _random_images(1, seed=2)])
    batched_tile, batched_fallback = tile_box(images, masks)
    for b in range(images.shape[0]):
        alone_tile, alone_fallback = tile_box(images[b : b + 1], masks[b : b + 1])
        assert torch.equal(batched_tile[b : b + 1], alone_tile)
        assert batched_fallback[b] == alone_fallback[0]
        for function in (gray_object, gray_box):
            assert torch.equal(function(images, masks)[b : b + 1], function(images[b : b + 1], masks[b : b + 1]))
    assert batched_fallback.tolist() == [False] * 5 + [True]


def test_ablate_dispatch():
    images, masks = _random_images(5), _masks()
    assert torch.equal(ablate(images, masks, "clean"), images)
    assert torch.equal(ablate(images, masks, "gray_object"), gray_object(images, masks))
    assert torch.equal(ablate(images, masks, "gray_box"), gray_box(images, masks))
    assert torch.equal(ablate(images, masks, "tile_box"), tile_box(images, masks)[0])
    with pytest.raises(ValueError, match="gray_box"):
        ablate(images, masks, "blur")
    with pytest.raises(ValueError, match="masks"):
        ablate(images, masks[:, :, :10], "gray_object")


def _bright_pixel_model(images: torch.Tensor) -> torch.Tensor:
    """Predicts class 1 when any pixel is bright (>= 0.95), else class 0; 3 logits (class 2 never predicted)."""
    bright = (images.amax(dim=(1, 2, 3)) >= 0.95).float()
    return torch.stack([1 - bright, bright, torch.full_like(bright, -1.0)], dim=1)


def _scene(background: float, box: tuple[int, int, int, int], object_value: float) -> tuple[torch.Tensor, ...]:
    image = torch.full((3, 16, 16), background)
    mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    y0, x0, y1, x1 = box
    mask[0, y0:y1, x0:x1] = True
    image[:, mask[0]] = object_value
    return image, mask


def ablation_accuracy(model_fn, batches, num_classes: int) -> dict:
    """What the test stage's AblationEvaluation callback does: sum each batch's counts, then summarise."""
    correct = torch.zeros(len(ABLATION_KINDS), num_classes, dtype=torch.long)
    total = torch.zeros(num_classes, dtype=torch.long)
    fallbacks = 0
    for batch in batches:
        batch_correct, batch_total, batch_fallbacks = ablation_counts(model_fn, batch["image"], batch["label"],
                                                                      batch["mask"], num_classes)
        correct, total, fallbacks = correct + batch_correct, total + batch_total, fallbacks + batch_fallbacks
    return ablation_summary(correct, total, fallbacks)


def test_ablation_accuracy_on_a_hand_made_model():
    a, mask_a = _scene(0.2, (4, 4, 8, 8), 1.0)  # label 1, recognised by its bright object
    b, mask_b = _scene(0.2, (4, 4, 8, 8), 0.3)  # label 0, dark object
    c, mask_c = _scene(0.2, (4, 4, 8, 8), 0.3)  # label 1, recognised by a bright spurious pixel far away
    c[:, 15, 15] = 1.0
    d, mask_d = _scene(0.2, (4, 4, 8, 5), 0.3)  # label 0, L-shaped object, bright context pixel inside its box
    mask_d[0, 7, 4:8] = True
    d[:, mask_d[0]] = 0.3
    d[:, 5, 6] = 1.0
    batches = [
        make_batch(torch.stack([a, b]), torch.tensor([1, 0]), torch.tensor([-1, -1]), torch.stack([mask_a, mask_b])),
        make_batch((torch.stack([c, d]) * 255).round().to(torch.uint8), torch.tensor([1, 0]), torch.tensor([-1, -1]),
                   torch.stack([mask_c, mask_d])),
    ]
    result = ablation_accuracy(_bright_pixel_model, batches, num_classes=3)
    assert result["ablation_acc"] == pytest.approx(
        {"clean": 0.75, "gray_object": 0.5, "gray_box": 0.75, "tile_box": 0.75}
    )
    assert result["ablation_drop"] == pytest.approx({"gray_object": 0.25, "gray_box": 0.0, "tile_box": 0.0})
    per_class = result["ablation_acc_class"]
    assert set(per_class) == set(ABLATION_KINDS)
    assert per_class["clean"][:2] == pytest.approx([0.5, 1.0])
    assert per_class["gray_object"][:2] == pytest.approx([0.5, 0.5])
    assert per_class["gray_box"][:2] == pytest.approx([1.0, 0.5])
    assert per_class["tile_box"][:2] == pytest.approx([1.0, 0.5])
    assert all(math.isnan(per_class[kind][2]) for kind in ABLATION_KINDS)  # class 2 has no sample
    assert result["tile_fallbacks"] == 0


def test_ablation_accuracy_through_a_dataloader(tmp_path):
    from datamodules.hard_imagenet import HardImageNet
    from tests.fakes.hard_imagenet import write_fake_hard_imagenet

    roots = write_fake_hard_imagenet(tmp_path, n_train_per_class=1, n_val_per_class=1, size=32)
    test = HardImageNet(*roots, image_size=24, resize=28).load()["test"]
    seen = []

    def model(images: torch.Tensor) -> torch.Tensor:
        seen.append((images.dtype, float(images.min()), float(images.max())))
        return torch.nn.functional.one_hot(torch.zeros(len(images), dtype=torch.long), 15).float()

    result = ablation_accuracy(model, DataLoader(test, batch_size=4), num_classes=15)
    assert all(dtype == torch.float32 and 0.0 <= low and high <= 1.0 for dtype, low, high in seen)
    assert result["ablation_acc"] == pytest.approx(dict.fromkeys(ABLATION_KINDS, 1 / 15))
    assert result["ablation_acc_class"]["clean"] == pytest.approx([1.0] + [0.0] * 14)
