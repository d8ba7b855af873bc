"""Real datasets read from ImageNet's folder layout (Hard ImageNet, BREEDS Living-17): the part they share.

Both read ``<imagenet_root>/<split>/<wnid>/<file>`` (ImageNet val re-sorted into wnid folders), list the files of
each class folder at validation (no image is opened), decode images lazily in ``__getitem__`` (in the loader's
workers; the dataset never sits in RAM) and split the same way: ImageNet val is the test set, validation is a seeded
part of ImageNet train, stratified by (class, subgroup) cell, and ``max_per_class`` caps every cell of every
on-disk split for quick runs.

- ``ImageFile``: where one sample lives (image, optional mask) and its label and subgroup.
- ``ImageFolderSplit``: a lazily decoded split of ``ImageFile``s as one view sees them (the classifiers' resize and
  centre crop, or a generator's shorter-side view), masks optional.
- ``ImageFolderSource``: a ``RealDataSource`` with the shared arguments, the classifiers' view, the stored shape
  of generated images, argument checks, the seeded splits and one ``ConfigError`` listing every problem; a dataset
  lists its own files (``index_files``) and states its own facts.
"""

from __future__ import annotations

import logging
import os
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import InterpolationMode

from common.errors import ConfigError
from common.image_views import ImageView
from common.samples import Sample, make_sample
from datamodules.base import LabelledSplit, RealDataSource

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")


@dataclass(frozen=True)
class ImageFile:
    """Where one sample lives on disk (its mask too, where the dataset has masks), and its label and subgroup."""

    image_path: str
    label: int
    group: int = -1
    mask_path: str | None = None


class ImageFolderSplit(LabelledSplit):
    """A lazily decoded split: samples ``(image uint8 (3,S,S), label, subgroup[, mask bool (1,S,S)])`` as ``view``
    sees them. Masks are returned when every file has one, unless ``masks=False`` (a consumer that never ablates,
    e.g. a generator).

    ``labels`` and ``groups`` are int64 tensors (like ``ImageSplit``), so callers read the class and subgroup counts
    without decoding any image; ``image_paths`` and ``mask_paths`` say where each sample comes from.
    """

    def __init__(self, files: list[ImageFile], view: ImageView, masks: bool = True) -> None:
        self.images = None  # decoded lazily, in the loader's workers
        self.files = list(files)
        self.image_paths = [file.image_path for file in self.files]
        self.mask_paths = [file.mask_path for file in self.files]
        self.labels = torch.tensor([file.label for file in self.files], dtype=torch.long)
        self.groups = torch.tensor([file.group for file in self.files], dtype=torch.long)
        self.view = view
        self.masks = bool(masks) and bool(self.files) and all(path is not None for path in self.mask_paths)

    def __len__(self) -> int:
        return len(self.image_paths)

    def viewed(self, view: ImageView) -> ImageFolderSplit:
        """The same files decoded through ``view`` (without masks); itself for its own view."""
        return self if view == self.view else ImageFolderSplit(self.files, view, masks=False)

    def __getitem__(self, index: int) -> Sample:
        """The decoded sample; ``"mask"`` (bool (1, H, W)) only when the split has masks."""
        image = self.view(decode_image(self.image_paths[index], mode=ImageReadMode.RGB), InterpolationMode.BILINEAR)
        if not self.masks:
            return make_sample(image, self.labels[index], self.groups[index])
        mask = decode_image(self.mask_paths[index], mode=ImageReadMode.GRAY)
        mask = self.view(mask, InterpolationMode.NEAREST) > 0
        return make_sample(image, self.labels[index], self.groups[index], mask)


class ImageFolderSource(RealDataSource):
    """A dataset read from ImageNet's folder layout: the arguments, checks and splits Hard ImageNet and Living-17
    share. A subclass states its facts (classes, subgroups), lists its files (``index_files``) and names itself in
    messages (``title``, ``where_to_get``).

    Args:
        imagenet_root: folder holding ``train/<wnid>/`` and ``<test_split>/<wnid>/`` image folders.
        image_size: side of the square centre crop the classifiers see.
        resize: the classifiers' resize before the crop (the shorter side, aspect kept; or both sides with
            ``squash``); >= image_size.
        squash: resize both sides to ``resize`` (aspect not kept) instead of the shorter side.
        val_fraction: share of each (class, subgroup) cell of ImageNet train held out for validation, in [0, 1).
        test_split: the on-disk split read as the test set (ImageNet val).
        max_per_class: keep at most this many images of each (class, subgroup) cell per on-disk split, chosen with
            ``seed``, for quick runs; None keeps all.
        seed: seeds ``max_per_class`` and the validation carve.
    """

    #: the dataset's name in messages ("Hard ImageNet is not usable: ...")
    title: str = "ImageNet"
    #: where the user gets the data, appended to every ConfigError
    where_to_get: str = ""
    #: the crop hint of the resize check (the dataset's usual preprocessing)
    usual_preprocessing: str = "resize=256, image_size=224"

    def __init__(self, imagenet_root: str, image_size: int = 224, resize: int = 256, squash: bool = False,
                 val_fraction: float = 0.1, test_split: str = "val", max_per_class: int | None = None,
                 seed: int = 0) -> None:
        self.imagenet_root = Path(imagenet_root).expanduser()
        self.image_size = image_size
        self.resize = resize
        self.squash = squash
        self.val_fraction = val_fraction
        self.test_split = test_split
        self.max_per_class = max_per_class
        self.seed = seed
        self._index: dict[str, list[ImageFile]] | None = None

    # ----------------------------------------------------------------- facts
    @property
    def crop_shape(self) -> tuple[int, int, int]:
        """(3, image_size, image_size): what the classifiers see (the card's ``image_shape``)."""
        return (3, int(self.image_size), int(self.image_size))

    @property
    def crop_view(self) -> ImageView:
        """Resize (``resize``: the shorter side, or both sides with ``squash``), then centre crop ``image_size`` (the
        card's ``classifier_view``)."""
        return ImageView(size=int(self.image_size), resize=int(self.resize), squash=bool(self.squash))

    def check_stack_shape(self, shape: tuple[int, int, int]) -> None:
        """Generated images are stored as RGB squares of any side; each consumer resizes and crops them."""
        if len(shape) != 3 or int(shape[0]) != 3 or int(shape[1]) != int(shape[2]) or int(shape[1]) < 1:
            raise ConfigError(
                f"{self.title} stores generated images as RGB squares (3, S, S), but the generator produces "
                f"{list(shape)}: set the generator's output to a square (stack_resolution for Stable Diffusion, "
                "e.g. 512)"
            )

    @property
    def splits(self) -> tuple[str, str]:
        """The on-disk splits read: train (also the source of validation) and the test split."""
        return ("train", self.test_split)

    # ------------------------------------------------------------ validation
    def argument_problems(self) -> list[str]:
        """Every argument that cannot work, one line each."""
        problems = []
        if not isinstance(self.image_size, int) or self.image_size < 1:
            problems.append(f"image_size must be a positive int, got {self.image_size!r}")
        if not isinstance(self.resize, int) or self.resize < 1:
            problems.append(f"resize must be a positive int, got {self.resize!r}")
        elif isinstance(self.image_size, int) and self.resize < self.image_size:
            problems.append(
                f"resize ({self.resize}) must be >= image_size ({self.image_size}): the crop is taken "
                f"from the resized image ({self.usual_preprocessing})"
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

    def other_problems(self) -> list[str]:
        """Problems of the dataset's own inputs besides its image folders (e.g. hierarchy files); none by default."""
        return []

    @abstractmethod
    def index_files(self) -> tuple[list[str], dict[str, list[ImageFile]]]:
        """List the files of every split in ``splits`` without opening any: (every problem found, {split: files}),
        the files of a split in (label, subgroup, file name) order."""

    def log_index(self) -> None:
        """Log what ``index_files`` found (after a successful validation)."""

    def validate(self) -> None:
        """Check the arguments, every expected folder and the dataset's other inputs; report all problems in one
        ConfigError. Only folders are listed (no image is opened); the file index is kept for ``load()``."""
        path_problems, index = self.index_files()
        problems = self.argument_problems() + path_problems + self.other_problems()
        if problems:
            raise problems_error(self.title, problems, self.where_to_get)
        self._index = index
        self.log_index()

    # ----------------------------------------------------------------- load
    def load(self) -> dict[str, ImageFolderSplit]:
        """Return lazy {'train', 'val', 'test'} splits seen through the classifiers' view; nothing is decoded here."""
        if self._index is None:
            self.validate()
        assert self._index is not None
        generator = torch.Generator().manual_seed(int(self.seed))
        pool = subsample_cells(self._index["train"], self.max_per_class, generator)
        train, val = carve_validation(pool, float(self.val_fraction), generator)
        test = subsample_cells(self._index[self.test_split], self.max_per_class, generator)
        splits = {"train": train, "val": val, "test": test}
        log.info("%s splits: %s", self.title, {name: len(files) for name, files in splits.items()})
        return {name: ImageFolderSplit(files, self.classifier_view) for name, files in splits.items()}


# ------------------------------------------------------------------------------------------------ helpers
def problems_error(title: str, problems: list[str], where_to_get: str) -> ConfigError:
    """One ConfigError listing every problem, one per line, and where to get the data."""
    listed = "\n".join(f"  - {problem}" for problem in problems)
    return ConfigError(f"{title} is not usable:\n{listed}\nHow to fix: {where_to_get}.")


def files_by_stem(folder: Path) -> dict[str, Path]:
    """Image files of a folder keyed by file stem (one directory scan; the first name in sorted order wins)."""
    found: dict[str, Path] = {}
    with os.scandir(folder) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        stem, extension = os.path.splitext(entry.name)
        if extension.lower() in IMAGE_EXTENSIONS:
            found.setdefault(stem, Path(entry.path))
    return found


def cells(files: list[ImageFile]) -> list[list[ImageFile]]:
    """Files grouped by (label, subgroup) cell, cells in (label, subgroup) order, files in their given order."""
    grouped: dict[tuple[int, int], list[ImageFile]] = {}
    for file in files:
        grouped.setdefault((file.label, file.group), []).append(file)
    return [grouped[key] for key in sorted(grouped)]


def subsample_cells(files: list[ImageFile], max_per_cell: int | None, generator: torch.Generator) -> list[ImageFile]:
    """At most ``max_per_cell`` files of every (label, subgroup) cell, chosen with ``generator``, in their order."""
    if max_per_cell is None:
        return files
    kept: list[ImageFile] = []
    for members in cells(files):
        order = torch.randperm(len(members), generator=generator).tolist()
        kept.extend(members[i] for i in sorted(order[:max_per_cell]))
    return kept


def carve_validation(files: list[ImageFile], val_fraction: float,
                     generator: torch.Generator) -> tuple[list[ImageFile], list[ImageFile]]:
    """(train, val), stratified: each (label, subgroup) cell gives round(val_fraction * n) files to val and keeps at
    least one for train; the choice is seeded by ``generator``."""
    train, val = [], []
    for members in cells(files):
        n_val = min(round(val_fraction * len(members)), max(len(members) - 1, 0))
        chosen = set(torch.randperm(len(members), generator=generator)[:n_val].tolist())
        for position, file in enumerate(members):
            (val if position in chosen else train).append(file)
    return train, val
