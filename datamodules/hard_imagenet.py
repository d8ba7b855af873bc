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
RAM. ImageNet val is the test set; validation is a seeded, stratified part of train. The lazily decoded split, the
argument checks and the splitting are shared with BREEDS Living-17 (``datamodules.imagenet_folders``).
The authors' metadata is pickled; the class table is a constant here instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

from datamodules.facts import DatasetFacts
from datamodules.imagenet_folders import ImageFile, ImageFolderSource, files_by_stem

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

_WHERE_TO_GET = (
    "ImageNet-1k (ILSVRC2012) comes from https://image-net.org (val re-sorted into <wnid> folders); "
    "the Hard ImageNet masks come from the authors' release, https://github.com/mmoayeri/HardImageNet "
    "(unpack so that <mask_root>/<split>/<wnid>_<image file> exists)"
)


class HardImageNet(ImageFolderSource):
    """The 15 Hard ImageNet classes with their object masks; no known subgroups (G = 0).

    Samples are ``(image uint8 (3,S,S), label, subgroup=-1, mask bool (1,S,S))``; the classifiers' view is the
    authors' ``resize x resize`` (aspect not kept) and centre crop ``image_size``.
    """

    title = "Hard ImageNet"
    where_to_get = _WHERE_TO_GET
    usual_preprocessing = "the authors use resize=256, image_size=224"

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
        super().__init__(imagenet_root, image_size=image_size, resize=resize, squash=True,
                         val_fraction=val_fraction, test_split=test_split, max_per_class=max_per_class, seed=seed)
        self.mask_root = Path(mask_root).expanduser()
        #: filled by validate(): {split: {"images": n, "masked": n, "per_class": [n_0, ..., n_14]}}
        self.counts: dict[str, dict] = {}

    # ----------------------------------------------------------------- facts
    @property
    def facts(self) -> DatasetFacts:
        return DatasetFacts(name="hard_imagenet", class_names=tuple(name for _, _, name in HARD_IMAGENET_CLASSES),
                            image_shape=self.crop_shape, classifier_view=self.crop_view, has_masks=True)

    @property
    def wnids(self) -> list[str]:
        return list(HARD_IMAGENET_WNIDS)

    @property
    def imagenet_indices(self) -> list[int]:
        return [index for index, _, _ in HARD_IMAGENET_CLASSES]

    # ------------------------------------------------------------ validation
    def index_files(self) -> tuple[list[str], dict[str, list[ImageFile]]]:
        """Every image of the 15 class folders that has a mask; a missing folder or a class without any masked
        image is a problem."""
        problems: list[str] = []
        index: dict[str, list[ImageFile]] = {}
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
            masks = files_by_stem(mask_dir)
            files: list[ImageFile] = []
            per_class, n_images = [], 0
            for label, wnid in enumerate(HARD_IMAGENET_WNIDS):
                class_dir = image_dir / wnid
                if not class_dir.is_dir():
                    problems.append(f"class folder {class_dir} ({self.class_names[label]}) is missing")
                    per_class.append(0)
                    continue
                images = files_by_stem(class_dir)
                n_images += len(images)
                matched = [
                    ImageFile(str(path), label, mask_path=str(masks[f"{wnid}_{stem}"]))
                    for stem, path in sorted(images.items())
                    if f"{wnid}_{stem}" in masks
                ]
                if not matched:
                    problems.append(
                        f"class folder {class_dir} ({self.class_names[label]}) has no image with a mask "
                        f"{mask_dir}/{wnid}_<image file>"
                    )
                per_class.append(len(matched))
                files.extend(matched)
            index[split] = files
            self.counts[split] = {"images": n_images, "masked": len(files), "per_class": per_class}
        return problems, index

    def log_index(self) -> None:
        for split, count in self.counts.items():
            log.info(
                "Hard ImageNet %s: %d of %d images have a mask and are used", split, count["masked"], count["images"]
            )
