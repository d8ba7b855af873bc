"""Hard ImageNet (Moayeri, Singla, Feizi 2022): 15 ImageNet classes with strong spurious cues, plus object masks.

Layout (the authors' release on top of ImageNet): images at ``<imagenet_root>/<split>/<wnid>/<file>`` (ImageNet
val re-sorted into wnid folders) and masks at ``<mask_root>/<split>/<wnid>_<file>``. The mask is matched to its image
by stem, so the authors' ``.JPEG`` masks and ``.png`` masks both work. Only images that have a mask are used: the masks
cover a subset of ImageNet and the ablations need one for every image.

The classifiers' preprocessing follows the authors: resize to ``resize x resize`` (aspect not kept), then
centre-crop ``image_size``, identically for image and mask (bilinear for the image, nearest for the mask), mask
binarised with ``> 0``. Another consumer gets the same files decoded through its own view (``viewed``): Stable
Diffusion sees the shorter side resized to its resolution and a centre crop, with no aspect distortion. Generated
images are stored as RGB squares at any resolution and reach the classifiers through the same resize and crop.
Images are decoded lazily in ``__getitem__`` so DataLoader workers share the decoding and the dataset never sits in
RAM. ImageNet val is the test set; validation is a seeded, stratified part of train.
The authors' metadata is pickled; the class table is a constant here instead.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import InterpolationMode

from common.errors import ConfigError
from common.image_views import ImageView
from datamodules.base import LabelledSplit, RealDataSource

log = logging.getLogger(__name__)

#: (ImageNet-1k index, WordNet id, name) in label order 0-14; wnids checked against timm's imagenet_synsets.txt.
HARD_IMAGENET_CLASSES: tuple[tuple[int, str, str], ...] = (
    (537, "n03218198", "dog sled"),
    (379, "n02492660", "howler monkey"),
    (785, "n04162706", "seat belt"),
    (795, "n04228054", "ski"),
    (837, "n04356056", "sunglasses"),
    (433, "n02807133", "swimming cap"),
    (416, "n02777292", "balance beam"),
    (602, "n03535780", "horizontal bar"),
    (706, "n03899768", "patio"),
    (746, "n04019541", "hockey puck"),
    (655, "n03770439", "miniskirt"),
    (810, "n04264628", "space bar"),
    (890, "n04540053", "volleyball"),
    (981, "n09835506", "baseball player"),
    (801, "n04251144", "snorkel"),
)
HARD_IMAGENET_WNIDS: tuple[str, ...] = tuple(wnid for _, wnid, _ in HARD_IMAGENET_CLASSES)
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")

_WHERE_TO_GET = (
    "ImageNet-1k (ILSVRC2012) comes from https://image-net.org (val re-sorted into <wnid> folders); "
    "the Hard ImageNet masks come from the authors' release, https://github.com/mmoayeri/HardImageNet "
    "(unpack so that <mask_root>/<split>/<wnid>_<image file> exists)"
)


@dataclass
class MaskedImage:
    """Where one sample lives on disk."""

    image_path: str
    mask_path: str
    label: int


class HardImageNetSplit(LabelledSplit):
    """A lazily decoded split: samples ``(image uint8 (3,S,S), label, subgroup=-1, mask bool (1,S,S))`` as ``view``
    sees them (``masks=False``: without the mask, for a consumer that never ablates, e.g. the generator).

    ``labels`` and ``groups`` are exposed as tensors (like ``ImageSplit``) so callers can read the class
    distribution without decoding any image.
    """

    def __init__(self, items: list[MaskedImage], view: ImageView, masks: bool = True) -> None:
        self.images = None  # decoded lazily, in the loader's workers
        self.items = list(items)
        self.image_paths = [item.image_path for item in items]
        self.mask_paths = [item.mask_path for item in items]
        self.labels = torch.tensor([item.label for item in items], dtype=torch.long)
        self.groups = torch.full((len(items),), -1, dtype=torch.long)
        self.view = view
        self.masks = bool(masks)

    def __len__(self) -> int:
        return len(self.image_paths)

    def viewed(self, view: ImageView) -> HardImageNetSplit:
        """The same files decoded through ``view`` (without masks); itself for its own view."""
        return self if view == self.view else HardImageNetSplit(self.items, view, masks=False)

    def __getitem__(self, index: int):
        image = self.view(decode_image(self.image_paths[index], mode=ImageReadMode.RGB), InterpolationMode.BILINEAR)
        if not self.masks:
            return image, self.labels[index], self.groups[index]
        mask = decode_image(self.mask_paths[index], mode=ImageReadMode.GRAY)
        mask = self.view(mask, InterpolationMode.NEAREST) > 0
        return image, self.labels[index], self.groups[index], mask


class HardImageNet(RealDataSource):
    """The 15 Hard ImageNet classes with their object masks; no known subgroups (G = 0)."""

    name = "hard_imagenet"

    has_masks = True

    def __init__(
        self,
        imagenet_root: str,
        mask_root: str,
        image_size: int = 224,
        resize: int = 256,
        val_fraction: float = 0.1,
        test_split: str = "val",
        max_per_class: int | None = None,
        seed: int = 0,
    ) -> None:
        self.imagenet_root = Path(imagenet_root).expanduser()
        self.mask_root = Path(mask_root).expanduser()
        self.image_size = image_size
        self.resize = resize
        self.val_fraction = val_fraction
        self.test_split = test_split
        self.max_per_class = max_per_class
        self.seed = seed
        self._index: dict[str, list[MaskedImage]] | None = None
        #: filled by validate(): {split: {"images": n, "masked": n, "per_class": [n_0, ..., n_14]}}
        self.counts: dict[str, dict] = {}

    # ----------------------------------------------------------------- facts
    @property
    def class_names(self) -> list[str]:
        return [name for _, _, name in HARD_IMAGENET_CLASSES]

    @property
    def group_names(self) -> list[str]:
        return []

    @property
    def wnids(self) -> list[str]:
        return list(HARD_IMAGENET_WNIDS)

    @property
    def imagenet_indices(self) -> list[int]:
        return [index for index, _, _ in HARD_IMAGENET_CLASSES]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, int(self.image_size), int(self.image_size))

    @property
    def classifier_view(self) -> ImageView:
        """The authors' preprocessing: ``resize x resize`` (aspect not kept), centre crop ``image_size``."""
        return ImageView(size=int(self.image_size), resize=int(self.resize), squash=True)

    def check_stack_shape(self, shape: tuple[int, int, int]) -> None:
        """Generated images are stored as RGB squares of any side; each consumer resizes and crops them."""
        if len(shape) != 3 or int(shape[0]) != 3 or int(shape[1]) != int(shape[2]) or int(shape[1]) < 1:
            raise ConfigError(
                f"Hard ImageNet stores generated images as RGB squares (3, S, S), but the generator produces "
                f"{list(shape)}: set the generator's output to a square (stack_resolution for Stable Diffusion, "
                "e.g. 512)"
            )

    @property
    def splits(self) -> tuple[str, str]:
        """The on-disk splits read: train (also the source of validation) and the test split."""
        return ("train", self.test_split)

    # ------------------------------------------------------------ validation
    def _argument_problems(self) -> list[str]:
        problems = []
        if not isinstance(self.image_size, int) or self.image_size < 1:
            problems.append(f"image_size must be a positive int, got {self.image_size!r}")
        if not isinstance(self.resize, int) or self.resize < 1:
            problems.append(f"resize must be a positive int, got {self.resize!r}")
        elif isinstance(self.image_size, int) and self.resize < self.image_size:
            problems.append(
                f"resize ({self.resize}) must be >= image_size ({self.image_size}): the crop is taken "
                "from the resized image (the authors use resize=256, image_size=224)"
            )
        if not isinstance(self.val_fraction, (int, float)) or not 0.0 <= self.val_fraction < 1.0:
            problems.append(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if not isinstance(self.test_split, str) or not self.test_split or self.test_split == "train":
            problems.append(
                f"test_split must name a split folder other than 'train' (normally 'val'), got {self.test_split!r}"
            )
        if self.max_per_class is not None and (not isinstance(self.max_per_class, int) or self.max_per_class < 1):
            problems.append(f"max_per_class must be None or a positive int, got {self.max_per_class!r}")
        return problems

    def _path_problems(self) -> tuple[list[str], dict[str, list[MaskedImage]]]:
        problems: list[str] = []
        index: dict[str, list[MaskedImage]] = {}
        if not self.imagenet_root.is_dir():
            problems.append(f"imagenet_root {self.imagenet_root} does not exist")
        if not self.mask_root.is_dir():
            problems.append(f"mask_root {self.mask_root} does not exist")
        for split in self.splits:
            image_dir, mask_dir = self.imagenet_root / split, self.mask_root / split
            if self.imagenet_root.is_dir() and not image_dir.is_dir():
                problems.append(f"ImageNet split folder {image_dir} is missing")
            if self.mask_root.is_dir() and not mask_dir.is_dir():
                problems.append(f"Hard ImageNet mask folder {mask_dir} is missing")
            if not (image_dir.is_dir() and mask_dir.is_dir()):
                continue
            masks = _files_by_stem(mask_dir)
            items: list[MaskedImage] = []
            per_class, n_images = [], 0
            for label, wnid in enumerate(HARD_IMAGENET_WNIDS):
                class_dir = image_dir / wnid
                if not class_dir.is_dir():
                    problems.append(f"class folder {class_dir} ({self.class_names[label]}) is missing")
                    per_class.append(0)
                    continue
                images = _files_by_stem(class_dir)
                n_images += len(images)
                matched = [
                    MaskedImage(str(path), str(masks[f"{wnid}_{stem}"]), label)
                    for stem, path in sorted(images.items())
                    if f"{wnid}_{stem}" in masks
                ]
                if not matched:
                    problems.append(
                        f"class folder {class_dir} ({self.class_names[label]}) has no image with a mask "
                        f"{mask_dir}/{wnid}_<image file>"
                    )
                per_class.append(len(matched))
                items.extend(matched)
            index[split] = items
            self.counts[split] = {"images": n_images, "masked": len(items), "per_class": per_class}
        return problems, index

    def validate(self) -> None:
        """Check the arguments and every expected folder, and report all problems in one ConfigError.

        Listing the folders is cheap (no image is opened); the matched file index is kept for ``load()``.
        """
        problems = self._argument_problems()
        path_problems, index = self._path_problems()
        problems += path_problems
        if problems:
            listed = "\n".join(f"  - {problem}" for problem in problems)
            raise ConfigError(f"Hard ImageNet is not usable:\n{listed}\nHow to fix: {_WHERE_TO_GET}.")
        self._index = index
        for split, count in self.counts.items():
            log.info(
                "Hard ImageNet %s: %d of %d images have a mask and are used", split, count["masked"], count["images"]
            )

    # ----------------------------------------------------------------- load
    def _subsample(self, items: list[MaskedImage], generator: torch.Generator) -> list[MaskedImage]:
        if self.max_per_class is None:
            return items
        kept: list[MaskedImage] = []
        for label in range(self.num_classes):
            members = [item for item in items if item.label == label]
            order = torch.randperm(len(members), generator=generator).tolist()
            kept.extend(members[i] for i in sorted(order[: self.max_per_class]))
        return kept

    def _carve_validation(
        self, items: list[MaskedImage], generator: torch.Generator
    ) -> tuple[list[MaskedImage], list[MaskedImage]]:
        """Stratified: each class gives round(val_fraction * n) images to val and keeps at least one for train."""
        train, val = [], []
        for label in range(self.num_classes):
            members = [item for item in items if item.label == label]
            n_val = min(round(float(self.val_fraction) * len(members)), max(len(members) - 1, 0))
            chosen = set(torch.randperm(len(members), generator=generator)[:n_val].tolist())
            for position, item in enumerate(members):
                (val if position in chosen else train).append(item)
        return train, val

    def load(self) -> dict[str, HardImageNetSplit]:
        """Return lazy {'train', 'val', 'test'} splits; nothing is decoded here."""
        if self._index is None:
            self.validate()
        assert self._index is not None
        generator = torch.Generator().manual_seed(int(self.seed))
        pool = self._subsample(self._index["train"], generator)
        train, val = self._carve_validation(pool, generator)
        test = self._subsample(self._index[self.test_split], generator)
        splits = {"train": train, "val": val, "test": test}
        log.info("Hard ImageNet splits: %s", {name: len(items) for name, items in splits.items()})
        return {name: HardImageNetSplit(items, self.classifier_view) for name, items in splits.items()}


def _files_by_stem(folder: Path) -> dict[str, Path]:
    """Image files of a folder keyed by file stem (one directory scan; the first name in sorted order wins)."""
    found: dict[str, Path] = {}
    with os.scandir(folder) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        stem, extension = os.path.splitext(entry.name)
        if extension.lower() in IMAGE_EXTENSIONS:
            found.setdefault(stem, Path(entry.path))
    return found
