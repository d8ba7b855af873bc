"""Image grids: a class-per-row sample sheet with class names, and captioned contact sheets for manual review.

The contact sheets print every sample's id, then its class, apart (``10 · 9`` is sample 10 of class 9), so that a
reviewer can write the ids to reject into ``gen_<g>.txt`` for ``ManualRejectFilter`` (paper app. C: generated samples
are reviewed by hand). The caption has no ``#``: that starts a comment in the reject list.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from common.errors import ConfigError
from common.io import atomic_save_image

GRID_PAD_VALUE = 128  # grey, visible between black-background (MNIST) and white-background images alike
GRID_PADDING = 2
MIN_CELL_PIXELS = 64  # small images are upscaled (nearest) so that a reviewer can judge them
CAPTION_FONT_SIZE = 13
CAPTION_SEPARATOR = " · "
CAPTION_ELLIPSIS = "…"
MAX_CAPTION_CLASS_CHARS = 14  # longer class names are shortened with an ellipsis
CAPTION_CLASS_COLOR = (30, 70, 160)  # the class in blue, the id in black: two things, visibly apart
_CAPTION = re.compile(r"(\d+)(?: · (.+))?")


def readable_font(size: int):
    """Pillow's bundled scalable font at ``size`` px (offline); its tiny bitmap font where FreeType is missing."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1, or built without FreeType
        return ImageFont.load_default()


def caption(sample_id: int, class_name: str | None = None) -> str:
    """``"10 · 9"``: the id, then the class (no ``#``, which starts a comment in the reject list)."""
    return str(int(sample_id)) if class_name is None else f"{int(sample_id)}{CAPTION_SEPARATOR}{class_name}"


def parse_caption(text: str) -> int:
    """The sample id a caption shows (what a reviewer writes into the reject list)."""
    match = _CAPTION.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a contact-sheet caption ('<id>' or '<id>{CAPTION_SEPARATOR}<class>')")
    return int(match.group(1))


def fit_caption(draw: ImageDraw.ImageDraw, sample_id: int, class_name: str | None, font, width: float) -> str:
    """The caption cut to ``width`` pixels: the class name is shortened (``…``) or dropped, the id always stays."""
    text = caption(sample_id, class_name)
    if class_name is None or draw.textlength(text, font=font) <= width:
        return text
    for end in range(len(class_name) - 1, 0, -1):
        text = caption(sample_id, class_name[:end] + CAPTION_ELLIPSIS)
        if draw.textlength(text, font=font) <= width:
            return text
    return caption(sample_id)


def _as_rgb_uint8(images: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise ConfigError(f"{what} must be a uint8 tensor (N, C, H, W)")
    if images.shape[1] == 1:
        return images.repeat(1, 3, 1, 1)
    if images.shape[1] != 3:
        raise ConfigError(f"{what} must have 1 (grey) or 3 (RGB) channels, got {images.shape[1]}")
    return images


def make_grid_image(images: torch.Tensor, labels: torch.Tensor, num_classes: int, per_class: int = 8,
                    class_names: list[str] | None = None) -> torch.Tensor:
    """uint8 (3, H, W) grid with one row per class: its first ``per_class`` samples, black where it has fewer;
    with ``class_names``, each row is labelled with its class name on the left (the images stay unscaled)."""
    if int(num_classes) < 1 or int(per_class) < 1:
        raise ConfigError(f"num_classes and per_class must be >= 1, got {num_classes} and {per_class}")
    if class_names is not None and len(class_names) < int(num_classes):
        raise ConfigError(f"the grid needs a name for each of the {num_classes} classes, got {len(class_names)}")
    images = _as_rgb_uint8(images, "grid images")
    labels = labels.long().cpu()
    cells = torch.zeros((num_classes * per_class, *images.shape[1:]), dtype=torch.uint8)
    for c in range(num_classes):
        members = torch.nonzero(labels == c).flatten()[:per_class]
        cells[c * per_class : c * per_class + len(members)] = images[members].cpu()
    from torchvision.utils import make_grid  # here: the report reads this module's fonts without torchvision

    grid = make_grid(cells, nrow=per_class, padding=GRID_PADDING, pad_value=GRID_PAD_VALUE)
    if class_names is None:
        return grid
    return _label_rows(grid, [str(n) for n in class_names[:num_classes]], images.shape[2])


def _label_rows(grid: torch.Tensor, names: list[str], image_height: int) -> torch.Tensor:
    """The grid with a white strip on its left holding each row's class name, vertically centred on the row."""
    font = readable_font(min(20, max(11, round(image_height * 0.5))))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    strip = math.ceil(max(measure.textlength(n, font=font) for n in names)) + 10
    height, width = grid.shape[1], grid.shape[2]
    canvas = Image.new("RGB", (strip + width, height), "white")
    canvas.paste(Image.fromarray(grid.permute(1, 2, 0).cpu().numpy()), (strip, 0))
    draw = ImageDraw.Draw(canvas)
    row = image_height + GRID_PADDING
    for c, name in enumerate(names):
        centre = GRID_PADDING + c * row + image_height / 2
        draw.text((strip - 5, centre), name, fill="black", font=font, anchor="rm")
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).contiguous()


def save_grid_png(grid: torch.Tensor, path: str | os.PathLike) -> None:
    """Write a uint8 (3, H, W) grid as a PNG, atomically."""
    atomic_save_image(Image.fromarray(grid.permute(1, 2, 0).cpu().numpy()), path)


def _class_name(label: int | None, class_names: list[str] | None) -> str | None:
    if label is None:
        return None
    return class_names[label] if class_names is not None and 0 <= label < len(class_names) else str(label)


class _SheetLayout:
    """Cell sizes and font of a contact sheet: images upscaled to >= 64 px, cells wide enough for the longest id
    and a short class name in a readable font."""

    def __init__(self, image_shape: tuple[int, int], ids: list[int], names: list[str | None]) -> None:
        self.font = readable_font(CAPTION_FONT_SIZE)
        self.draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        _, top, _, bottom = self.font.getbbox("0123456789")
        self.caption_height = int(bottom - top) + 8
        scale = max(1, math.ceil(MIN_CELL_PIXELS / max(image_shape)))
        self.image_h, self.image_w = image_shape[0] * scale, image_shape[1] * scale
        widest = max((self.draw.textlength(caption(max(ids, default=0), n[:MAX_CAPTION_CLASS_CHARS] if n else None),
                                           font=self.font) for n in set(names)), default=0.0)
        self.cell_w = max(self.image_w, MIN_CELL_PIXELS, math.ceil(widest)) + 4
        self.cell_h = self.image_h + self.caption_height + 4

    def caption(self, sample_id: int, name: str | None) -> str:
        return fit_caption(self.draw, sample_id, name, self.font, self.cell_w - 4)


def contact_sheet_captions(image_shape: tuple[int, int], sample_ids: list[int], labels: list[int | None] | None = None,
                           class_names: list[str] | None = None) -> list[str]:
    """The caption printed under each image of a contact sheet of ``image_shape`` (H, W) images, in order."""
    names = [_class_name(label, class_names) for label in (labels or [None] * len(sample_ids))]
    layout = _SheetLayout(image_shape, list(sample_ids), names)
    return [layout.caption(i, n) for i, n in zip(sample_ids, names)]


def contact_sheet_layout(image_shape: tuple[int, int], sample_ids: list[int], labels: list[int] | None = None,
                         class_names: list[str] | None = None) -> _SheetLayout:
    """The cell sizes and font shared by every sheet of a block of ``image_shape`` (H, W) images: computed from every
    id and label of the block, so sheets drawn one at a time (on several ranks) look like sheets drawn together."""
    names = [_class_name(label, class_names) for label in (labels or [None] * len(sample_ids))]
    return _SheetLayout(image_shape, list(sample_ids), names)


def save_contact_sheet(images: torch.Tensor, sample_ids: list[int], labels: list[int] | None, path: str,
                       layout: _SheetLayout, per_sheet: int = 100, class_names: list[str] | None = None) -> str:
    """Write one PNG sheet of at most ``per_sheet`` images, each captioned with its sample id (and class)."""
    images = _as_rgb_uint8(images, "contact sheet images")
    names = [_class_name(label, class_names) for label in (labels or [None] * len(sample_ids))]
    columns = math.ceil(math.sqrt(per_sheet))
    count = len(sample_ids)
    rows = math.ceil(count / columns)
    cell_w, cell_h, font = layout.cell_w, layout.cell_h, layout.font
    sheet = Image.new("RGB", (min(count, columns) * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for offset in range(count):
        x, y = (offset % columns) * cell_w + 2, (offset // columns) * cell_h + 2
        tile = Image.fromarray(images[offset].permute(1, 2, 0).cpu().numpy())
        sheet.paste(tile.resize((layout.image_w, layout.image_h), Image.NEAREST), (x, y))
        text = layout.caption(sample_ids[offset], names[offset])
        sample_id, _, rest = text.partition(CAPTION_SEPARATOR)
        draw.text((x, y + layout.image_h + 3), sample_id, fill="black", font=font)
        if rest:
            draw.text((x + draw.textlength(sample_id, font=font), y + layout.image_h + 3),
                      CAPTION_SEPARATOR + rest, fill=CAPTION_CLASS_COLOR, font=font)
    atomic_save_image(sheet, path)
    return path


def contact_sheet_path(out_dir: str, sheet_index: int, prefix: str = "contact_sheet") -> str:
    return os.path.join(out_dir, f"{prefix}_{sheet_index:04d}.png")


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
    label_list = labels.long().cpu().tolist() if labels is not None else None
    os.makedirs(out_dir, exist_ok=True)
    layout = contact_sheet_layout((images.shape[2], images.shape[3]), ids, label_list, class_names)
    paths = []
    for sheet_index, start in enumerate(range(0, len(ids), per_sheet)):
        stop = min(start + per_sheet, len(ids))
        paths.append(save_contact_sheet(images[start:stop], ids[start:stop],
                                        None if label_list is None else label_list[start:stop],
                                        contact_sheet_path(out_dir, sheet_index, prefix), layout, per_sheet,
                                        class_names))
    return paths
