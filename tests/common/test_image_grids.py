"""Image grids (a row per class, labelled with its class name) and captioned contact sheets for manual review."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from common.errors import ConfigError
from common.image_grids import (
    CAPTION_CLASS_COLOR,
    GRID_PAD_VALUE,
    caption,
    contact_sheet_captions,
    make_grid_image,
    parse_caption,
    save_contact_sheets,
)
from filters.manual import read_id_list

CIFAR_NAMES = ["aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
               "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
               "large_man-made_outdoor_things"]


def test_grid_has_a_row_per_class_and_blank_missing_slots():
    labels = torch.tensor([0, 1, 2, 0, 1, 0, 1, 0, 1, 0, 2, 1])  # class 2 has only 2 samples
    images = (labels * 80 + 10).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 8, 8).contiguous()
    grid = make_grid_image(images, labels, num_classes=3, per_class=4)
    assert grid.dtype == torch.uint8 and grid.shape == (3, 3 * 10 + 2, 4 * 10 + 2)
    for c in range(3):
        for slot in range(4):
            cell = grid[:, 2 + c * 10 : 10 + c * 10, 2 + slot * 10 : 10 + slot * 10]
            expected = 0 if (c == 2 and slot >= 2) else c * 80 + 10
            assert (cell == expected).all(), (c, slot)
    assert (grid[:, 0, :] == GRID_PAD_VALUE).all()


def test_grid_accepts_rgb_and_rejects_other_channel_counts():
    rgb = torch.randint(0, 256, (6, 3, 5, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    grid = make_grid_image(rgb, torch.tensor([0, 0, 1, 1, 1, 1]), num_classes=2, per_class=3)
    assert torch.equal(grid[:, 2:7, 2:7], rgb[0])
    assert torch.equal(grid[:, 9:14, 2:7], rgb[2])
    with pytest.raises(ConfigError, match="channels"):
        make_grid_image(torch.zeros(2, 2, 5, 5, dtype=torch.uint8), torch.zeros(2), num_classes=1)


def test_grid_rows_are_labelled_with_their_class_names_in_a_readable_font():
    labels = torch.arange(30) % 3
    images = torch.full((30, 3, 28, 28), 255, dtype=torch.uint8)  # white images: ink can only be a label
    plain = make_grid_image(images, labels, num_classes=3, per_class=4)
    named = make_grid_image(images, labels, num_classes=3, per_class=4, class_names=["zero", "one", "two"])
    strip = named.shape[2] - plain.shape[2]
    assert named.shape[1] == plain.shape[1] and strip > 20  # a label strip on the left, rows unchanged
    assert torch.equal(named[:, :, strip:], plain)  # the images themselves are untouched
    ink = named[:, :, :strip].min(dim=0).values < 100
    row = 28 + 2
    for c in range(3):
        rows_with_ink = torch.nonzero(ink[2 + c * row : 2 + c * row + 28].any(dim=1)).flatten()
        assert len(rows_with_ink) >= 8, c  # a glyph at least 8 px tall (the bitmap default is ~6 px)
    assert not ink[0:2].any()  # nothing drawn over the padding above the first row
    with pytest.raises(ConfigError, match="a name for each"):
        make_grid_image(images, labels, num_classes=3, class_names=["zero"])


def dark_fraction(region: np.ndarray) -> float:
    return float((region.max(axis=-1) < 100).mean())


@pytest.mark.parametrize("channels", [1, 3])
def test_contact_sheets_are_written_with_ids_under_the_images(tmp_path, channels):
    n = 23
    images = torch.full((n, channels, 28, 28), 200, dtype=torch.uint8)  # light images on a white sheet
    paths = save_contact_sheets(images, torch.arange(500, 500 + n), str(tmp_path), per_sheet=10)
    assert [p.rsplit("/", 1)[-1] for p in paths] == [
        "contact_sheet_0000.png",
        "contact_sheet_0001.png",
        "contact_sheet_0002.png",
    ]
    sheets = [np.asarray(Image.open(path).convert("RGB")) for path in paths]
    assert sheets[0].shape == sheets[1].shape
    assert sheets[2].shape[0] < sheets[0].shape[0]  # 3 images: one row instead of three
    image_px = 28 * 3  # upscaled to at least 64 px
    first_cell = sheets[0][2 : 2 + image_px, 2 : 2 + image_px]
    assert (first_cell == 200).all()
    caption = sheets[0][2 + image_px : 2 + image_px + 14, 2 : 2 + image_px]
    assert 0.01 < dark_fraction(caption) < 0.5  # text was drawn, it is not a filled box
    assert dark_fraction(sheets[0][:2]) == 0.0


def test_contact_sheet_captions_can_name_the_class(tmp_path):
    images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    plain = save_contact_sheets(images, torch.arange(4), str(tmp_path / "plain"), per_sheet=4)
    named = save_contact_sheets(
        images,
        torch.arange(4),
        str(tmp_path / "named"),
        per_sheet=4,
        labels=torch.tensor([0, 1, 0, 1]),
        class_names=["seven", "eight"],
    )
    plain_pixels, named_pixels = (np.asarray(Image.open(p[0]).convert("L")) for p in (plain, named))
    assert plain_pixels.shape == named_pixels.shape
    assert (named_pixels < 100).sum() > (plain_pixels < 100).sum()  # longer captions, more ink
    with pytest.raises(ConfigError, match="one sample id"):
        save_contact_sheets(images, torch.arange(3), str(tmp_path / "bad"))
    assert blue_pixels(named[0]) > 0 and blue_pixels(plain[0]) == 0  # the class is drawn apart, in its own colour


def blue_pixels(path: str) -> int:
    """Pixels in the class caption's colour (CAPTION_CLASS_COLOR is blue: B well above R)."""
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert CAPTION_CLASS_COLOR[2] - CAPTION_CLASS_COLOR[0] > 60
    return int((rgb[..., 2] - rgb[..., 0] > 60).sum())


@pytest.mark.parametrize("class_names", [[str(c) for c in range(10)], CIFAR_NAMES], ids=["digits", "long_names"])
def test_every_caption_parses_back_to_one_id(tmp_path, class_names):
    """Sample 10 of class 9 and sample 109 must never read alike: every caption gives back exactly its own id,
    which the reject list reads, even where a long class name is shortened to fit the cell."""
    ids = list(range(0, 1100)) + [10_009, 99_999]
    labels = [i % 10 for i in ids]
    captions = contact_sheet_captions((28, 28), ids, labels, class_names)
    assert [parse_caption(text) for text in captions] == ids
    assert caption(10, "9") == "10 · 9" and caption(109) == "109" and parse_caption("10 · 9") == 10
    assert len(set(captions)) == len(ids)
    if class_names is CIFAR_NAMES:
        assert any(text.endswith("…") for text in captions)  # shortened, never losing a digit of the id
    reject = tmp_path / "gen_1.txt"
    reject.write_text("".join(f"{parse_caption(text)}\n" for text in captions[::7]))
    assert read_id_list(str(reject)) == set(ids[::7])
    for text in ("#10 · 9", "10 9", "ten · 9", ""):
        with pytest.raises(ValueError, match="not a contact-sheet caption"):
            parse_caption(text)
