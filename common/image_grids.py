"""Image grids: a class-per-row overview for TensorBoard, and captioned contact sheets for manual review.

The contact sheets print every sample's id under its image so that a reviewer can write the ids to reject
into ``gen_<g>.txt`` for ``ManualRejectFilter`` (paper app. C: generated samples are reviewed by hand).
"""

from __future__ import annotations

import math
import os

import torch
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid

from common.errors import ConfigError
from common.io import atomic_save_image

GRID_PAD_VALUE = 128  # grey, visible between black-background (MNIST) and white-background images alike
MIN_CELL_PIXELS = 64  # small images are upscaled (nearest) so that a reviewer can judge them


def _as_rgb_uint8(images: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise ConfigError(f"{what} must be a uint8 tensor (N, C, H, W)")
    if images.shape[1] == 1:
        return images.repeat(1, 3, 1, 1)
    if images.shape[1] != 3:
        raise ConfigError(f"{what} must have 1 (grey) or 3 (RGB) channels, got {images.shape[1]}")
    return images


def make_grid_image(images: torch.Tensor, labels: torch.Tensor, num_classes: int, per_class: int = 8) -> torch.Tensor:
    """uint8 (3, H, W) grid with one row per class: its first ``per_class`` samples, black where it has fewer."""
    if int(num_classes) < 1 or int(per_class) < 1:
        raise ConfigError(f"num_classes and per_class must be >= 1, got {num_classes} and {per_class}")
    images = _as_rgb_uint8(images, "grid images")
    labels = labels.long().cpu()
    cells = torch.zeros((num_classes * per_class, *images.shape[1:]), dtype=torch.uint8)
    for c in range(num_classes):
        members = torch.nonzero(labels == c).flatten()[:per_class]
        cells[c * per_class : c * per_class + len(members)] = images[members].cpu()
    return make_grid(cells, nrow=per_class, padding=2, pad_value=GRID_PAD_VALUE)


def save_grid_png(grid: torch.Tensor, path: str | os.PathLike) -> None:
    """Write a uint8 (3, H, W) grid as a PNG, atomically."""
    atomic_save_image(Image.fromarray(grid.permute(1, 2, 0).cpu().numpy()), path)


def _caption(sample_id: int, label: int | None, class_names: list[str] | None) -> str:
    if label is None:
        return str(sample_id)
    name = class_names[label] if class_names is not None and 0 <= label < len(class_names) else str(label)
    return f"{sample_id} {name}"


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """``text`` cut so that it fits ``width`` pixels (the id, first, always stays)."""
    while len(text) > 1 and draw.textlength(text, font=font) > width and " " in text:
        text = text[:-1]
    return text


def save_contact_sheets(
    images: torch.Tensor,
    sample_ids: torch.Tensor,
    out_dir: str,
    per_sheet: int = 100,
    labels: torch.Tensor | None = None,
    class_names: list[str] | None = None,
    prefix: str = "contact_sheet",
) -> list[str]:
    """Write PNG sheets of ``per_sheet`` images, each captioned with its sample id (and class when ``labels``).

    Returns the paths in order; sheet k holds samples ``k * per_sheet`` to ``(k + 1) * per_sheet - 1``.
    """
    if int(per_sheet) < 1:
        raise ConfigError(f"per_sheet must be >= 1, got {per_sheet}")
    images = _as_rgb_uint8(images, "contact sheet images")
    ids = sample_ids.long().cpu().tolist()
    if len(ids) != images.shape[0] or (labels is not None and len(labels) != images.shape[0]):
        raise ConfigError("contact sheets need one sample id (and label, when given) per image")
    label_list = labels.long().cpu().tolist() if labels is not None else [None] * len(ids)
    os.makedirs(out_dir, exist_ok=True)

    font = ImageFont.load_default()
    _, top, _, bottom = font.getbbox("0123456789")
    caption_height = int(bottom - top) + 6
    scale = max(1, math.ceil(MIN_CELL_PIXELS / max(images.shape[2], images.shape[3])))
    image_h, image_w = images.shape[2] * scale, images.shape[3] * scale
    cell_w, cell_h = max(image_w, MIN_CELL_PIXELS) + 4, image_h + caption_height + 4
    columns = math.ceil(math.sqrt(per_sheet))

    paths = []
    for sheet_index, start in enumerate(range(0, len(ids), per_sheet)):
        count = min(per_sheet, len(ids) - start)
        rows = math.ceil(count / columns)
        sheet = Image.new("RGB", (min(count, columns) * cell_w, rows * cell_h), "white")
        draw = ImageDraw.Draw(sheet)
        for offset in range(count):
            index = start + offset
            x, y = (offset % columns) * cell_w + 2, (offset // columns) * cell_h + 2
            tile = Image.fromarray(images[index].permute(1, 2, 0).cpu().numpy())
            sheet.paste(tile.resize((image_w, image_h), Image.NEAREST), (x, y))
            text = _fit(draw, _caption(ids[index], label_list[index], class_names), font, cell_w - 4)
            draw.text((x, y + image_h + 2), text, fill="black", font=font)
        path = os.path.join(out_dir, f"{prefix}_{sheet_index:04d}.png")
        atomic_save_image(sheet, path)
        paths.append(path)
    return paths
