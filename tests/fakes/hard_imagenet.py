"""Seeded fake Hard ImageNet in the published on-disk layout, for tests (no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from datamodules.hard_imagenet import HARD_IMAGENET_WNIDS


def _object_mask(rng: np.random.Generator, size: int, width: int) -> Image.Image:
    """A random rectangle or ellipse covering a fair part of the image (255 = object); ``size`` rows, ``width``
    columns."""
    mask = Image.new("L", (width, size), 0)
    x0, y0 = rng.integers(0, size // 2, size=2)
    width, height = rng.integers(size // 4, size // 2, size=2)
    x1, y1 = x0 + width, y0 + height
    shape = (int(x0), int(y0), int(x1), int(y1))
    draw = ImageDraw.Draw(mask)
    (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(shape, fill=255)
    return mask


def _image_with_object(rng: np.random.Generator, mask: Image.Image, size: int, width: int) -> Image.Image:
    """Noisy background with a brighter object where the mask is set, so the object is visible."""
    pixels = rng.integers(0, 120, size=(size, width, 3), dtype=np.uint8)
    object_colour = rng.integers(150, 256, size=3, dtype=np.uint8)
    pixels[np.asarray(mask) > 0] = object_colour
    return Image.fromarray(pixels, "RGB")


def write_fake_hard_imagenet(
    root: str | Path,
    n_train_per_class: int = 4,
    n_val_per_class: int = 2,
    size: int = 64,
    seed: int = 0,
    unmasked_per_class: int = 1,
    width: int | None = None,
) -> tuple[str, str]:
    """Write ``<root>/imagenet/{train,val}/<wnid>/*.JPEG`` and ``<root>/hard_imagenet_masks/{split}/<wnid>_<stem>.png``.

    Each class gets ``n_*_per_class`` masked images plus ``unmasked_per_class`` images without a mask (the real
    masks cover only part of ImageNet). Train files are named like ImageNet's (``<wnid>_<n>.JPEG``), val files
    like ``ILSVRC2012_val_<8 digits>.JPEG``. Images are ``size`` pixels high and ``width`` (default ``size``) wide,
    like ImageNet's landscape photos when ``width > size``. Returns ``(imagenet_root, mask_root)``.
    """
    width = size if width is None else int(width)
    root = Path(root)
    imagenet_root, mask_root = root / "imagenet", root / "hard_imagenet_masks"
    rng = np.random.default_rng(seed)
    val_counter = 0
    for split, n_masked in (("train", n_train_per_class), ("val", n_val_per_class)):
        (mask_root / split).mkdir(parents=True, exist_ok=True)
        for wnid in HARD_IMAGENET_WNIDS:
            class_dir = imagenet_root / split / wnid
            class_dir.mkdir(parents=True, exist_ok=True)
            for i in range(n_masked + unmasked_per_class):
                if split == "train":
                    stem = f"{wnid}_{i}"
                else:
                    val_counter += 1
                    stem = f"ILSVRC2012_val_{val_counter:08d}"
                mask = _object_mask(rng, size, width)
                _image_with_object(rng, mask, size, width).save(class_dir / f"{stem}.JPEG", format="JPEG", quality=95)
                if i < n_masked:
                    mask.save(mask_root / split / f"{wnid}_{stem}.png", format="PNG")
    return str(imagenet_root), str(mask_root)


def add_striped_image(roots: tuple[str, str], label: int = 0, height: int = 40, width: int = 120,
                      stem: str = "n_striped") -> str:
    """Add one lossless landscape image to the train split: red | green | blue vertical stripes of widths
    1/4 | 1/2 | 1/4, with a full mask. A view that keeps the aspect and crops the centre sees only green (when the
    width is at least twice the height); a squashing resize keeps red and blue at the borders. Returns its stem."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    first, last = width // 4, 3 * width // 4
    pixels[:, :first, 0], pixels[:, first:last, 1], pixels[:, last:, 2] = 255, 255, 255
    wnid = HARD_IMAGENET_WNIDS[label]
    Image.fromarray(pixels).save(Path(roots[0]) / "train" / wnid / f"{stem}.png")
    Image.fromarray(np.full((height, width), 255, dtype=np.uint8)).save(Path(roots[1]) / "train" / f"{wnid}_{stem}.png")
    return stem


#: fields of a result row that measure time, not results
TIMING_FIELDS = ("wall_s", "train_s", "eval_s", "time_s")


def tiny_hardimagenet_options(root: Path) -> list[str]:
    """Command-line options pointing ``tests/configs/tiny_hardimagenet.yaml`` at a fake Hard ImageNet and a tiny
    Stable Diffusion folder written under ``root``."""
    from tests.fakes.tiny_sd import build_tiny_sd

    imagenet_root, mask_root = write_fake_hard_imagenet(root / "data", size=48, width=64)
    sd_path = build_tiny_sd(root / "tiny_sd")
    return ["--data.source.init_args.imagenet_root", str(imagenet_root),
            "--data.source.init_args.mask_root", str(mask_root), "--model.init_args.pretrained_path", str(sd_path)]


def without_timing(row: dict) -> dict:
    """A result row without the fields that measure time (what two runs of the same experiment share exactly)."""
    return {key: value for key, value in row.items() if not key.endswith(TIMING_FIELDS)}
