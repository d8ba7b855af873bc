"""CIFAR-20/100 (paper section 4.3): CIFAR-100's 20 superclasses are the labels, their 5 fine classes the subgroups.

A classifier only ever sees the superclass, so how well it does on each fine class inside a superclass is a natural
subgroup-fairness question. The biased variant (Zhang et al. 2024) starves two "bottom" fine classes per superclass
of training images so the subgroup gap is known to exist.

The data are read from the original pickled batches ``<root>/cifar-100-python/{train,test,meta}``. The superclass
membership is also kept as a constant table here and the files are checked against it, so pointing ``root`` at the
wrong folder (e.g. CIFAR-10) fails with a clear message instead of silently mislabelled data.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.errors import ConfigError
from common.image_views import ImageView
from common.seeds import seeded_generator
from datamodules.base import ImageSplit, RealDataSource
from datamodules.facts import DatasetFacts
from datamodules.splits import stratified_split, stratified_subsample

#: The standard CIFAR-100 superclass membership (Krizhevsky 2009): superclasses in coarse-label order, the fine
#: classes of each in ascending fine-label order (fine labels are alphabetical, so this is alphabetical too).
SUPERCLASS_MEMBERS: dict[str, tuple[str, str, str, str, str]] = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
COARSE_CLASS_NAMES: list[str] = list(SUPERCLASS_MEMBERS)
#: the 100 fine names in fine-label order (CIFAR-100 numbers them alphabetically)
FINE_CLASS_NAMES: list[str] = sorted(name for members in SUPERCLASS_MEMBERS.values() for name in members)
_FINE_INDEX = {name: index for index, name in enumerate(FINE_CLASS_NAMES)}


def _fine_label_tables() -> tuple[np.ndarray, np.ndarray]:
    """Fine label -> coarse label, and fine label -> subgroup (rank among its superclass's 5 fine labels)."""
    coarse_of_fine = np.empty(len(FINE_CLASS_NAMES), dtype=np.int64)
    subgroup_of_fine = np.empty(len(FINE_CLASS_NAMES), dtype=np.int64)
    for coarse, members in enumerate(SUPERCLASS_MEMBERS.values()):
        for subgroup, fine in enumerate(sorted(_FINE_INDEX[name] for name in members)):
            coarse_of_fine[fine], subgroup_of_fine[fine] = coarse, subgroup
    return coarse_of_fine, subgroup_of_fine


COARSE_OF_FINE, SUBGROUP_OF_FINE = _fine_label_tables()

#: Zhang et al. 2024's two under-represented fine classes per superclass (superclass order)
BOTTOM_PAIRS: tuple[tuple[str, str], ...] = (
    ("beaver", "otter"), ("shark", "aquarium_fish"), ("orchid", "tulip"), ("bowl", "can"), ("mushroom", "pear"),
    ("clock", "lamp"), ("table", "couch"), ("caterpillar", "butterfly"), ("bear", "wolf"), ("house", "bridge"),
    ("forest", "mountain"), ("kangaroo", "elephant"), ("raccoon", "possum"), ("lobster", "snail"), ("man", "woman"),
    ("snake", "turtle"), ("shrew", "squirrel"), ("willow_tree", "palm_tree"), ("bus", "bicycle"),
    ("streetcar", "tractor"),
)  # fmt: skip
DEFAULT_BOTTOM_CLASSES: list[str] = [name for pair in BOTTOM_PAIRS for name in pair]

FOLDER_NAME = "cifar-100-python"
BATCH_FILES = ("train", "test", "meta")
IMAGE_SHAPE = (3, 32, 32)
GROUP_NAMES = [f"sub{index}" for index in range(5)]

#: the splits of the original training file: ``seeded`` (a seeded stratified validation share, the rest trains) or
#: ``zhang2024``, the cited CIFAR-20/100 code's (ZhangAIPI/DIM ``data/imbalanced_supercifar100.py``): per fine class,
#: in the order of the training file, the first 40% train, the next 40% are held out (its "intervention" split, not
#: used here), the last 20% validate; a biased bottom class keeps the first ``bottom_fraction`` of its train share
SPLITS = ("seeded", "zhang2024")
ZHANG_TRAIN_SHARE, ZHANG_HELD_OUT_END = 0.4, 0.8

# independent random streams, so e.g. switching ``biased`` on keeps the same validation split
_STREAM_VAL, _STREAM_BOTTOM, _STREAM_SUBSAMPLE = range(3)

# The only globals a CIFAR-100 batch needs: numpy's array reconstruction (module name as pickled by numpy 1.x,
# which wrote the real files, and by numpy 2), the ndarray class and dtype. Objects, not import paths, so
# nothing is imported by name from the file.
_ARRAY_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _ARRAY_RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _ARRAY_RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class CifarBatchUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR-100 batches that refuses every global except numpy's array reconstruction.

    The format forces pickle on us, and a plain ``pickle.load`` runs any callable a tampered file names (e.g.
    ``os.system``). The batches hold only dicts, lists, strings, ints and uint8 numpy arrays, so nothing else
    is needed; anything else means the file is not a genuine batch.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing global {module}.{name}: a CIFAR-100 batch holds only numpy arrays and plain data"
            ) from None


def read_cifar_pickle(path: str | Path) -> dict[str, Any]:
    """Read one original (Python 2) CIFAR-100 pickle safely; keys come back as ``str``.

    ``latin1`` turns Python 2 byte strings into ``str`` one byte per character, which is how numpy expects its
    array payload; keys written as ``bytes`` are decoded the same way so both spellings read alike.
    """
    try:
        with open(path, "rb") as handle:
            content = CifarBatchUnpickler(handle, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise ConfigError(
            f"cifar20: {path} is not a valid CIFAR-100 pickle ({error}); delete the {FOLDER_NAME} folder and "
            "download it again (download: true on a machine with internet)"
        ) from error
    if not isinstance(content, dict):
        raise ConfigError(f"cifar20: {path} holds a {type(content).__name__}, not a CIFAR-100 batch dict")
    return {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in content.items()}


def _as_names(values: Any) -> list[str]:
    return [value.decode("latin1") if isinstance(value, bytes) else str(value) for value in values]


class CIFAR20(RealDataSource):
    """CIFAR-20/100: labels = the 20 coarse superclasses (0-19, meta's ``coarse_label_names`` order), subgroup =
    the index (0-4) of the sample's fine class within its superclass, the 5 fine classes ordered by ascending
    fine-label index (= alphabetically, e.g. aquatic_mammals: beaver 0, dolphin 1, otter 2, seal 3, whale 4).

    "sub i" therefore means different fine classes in different superclasses; ``superclass_members[c][g]`` names
    the fine class of (class c, subgroup g). The validation split is carved from the original training
    batch, stratified by fine class; the test split is CIFAR-100's test batch (100 images per fine class).
    """

    facts = DatasetFacts(name="cifar20", class_names=tuple(COARSE_CLASS_NAMES), image_shape=IMAGE_SHAPE,
                         classifier_view=ImageView(size=IMAGE_SHAPE[-1]), group_names=tuple(GROUP_NAMES),
                         subgroups="per_class", subgroup_noun="fine class",
                         fairness_reading="cells")

    def __init__(
        self,
        root: str = "data",
        download: bool = False,
        biased: bool = False,
        bottom_fraction: float = 0.25,
        bottom_classes: list[str] | None = None,
        val_fraction: float = 0.1,
        max_train_samples: int | None = None,
        seed: int = 0,
        split: str = "seeded",
    ) -> None:
        """
        Args:
            root: folder containing ``cifar-100-python/{train,test,meta}`` in the original pickled format.
            download: fetch and unpack the official archive into ``root`` when the files are missing (needs
                internet; torchvision's URL and checksum).
            biased: Zhang et al. 2024's variant: every fine class in ``bottom_classes`` keeps only
                ``bottom_fraction`` of its training images (val and test untouched).
            bottom_fraction: share of training images a bottom fine class keeps, in (0, 1].
            bottom_classes: fine class names to starve when ``biased``; default the 40 bottom pairs of
                Zhang et al. (beaver/otter, shark/aquarium_fish, ...; two per superclass).
            val_fraction: share of every fine class's training images held out for validation, in (0, 1).
                Carved before the biased subsampling, so validation stays balanced over subgroups.
            max_train_samples: keep only this many training images (stratified by fine class, so the bias
                ratio is kept), for quick runs; null keeps all.
            seed: seeds the validation split, the bottom-class subsampling and ``max_train_samples``.
            split: ``seeded`` (``val_fraction`` of each fine class validates, seeded; the rest trains) or
                ``zhang2024``, the cited CIFAR-20/100 code's split, by file order, no randomness: per fine class the
                first int(0.4 n) images train, the next up to int(0.8 n) are held out (unused), the rest validate;
                a bottom class of the biased variant keeps the first int(bottom_fraction * its train share)
                (``val_fraction`` is not used).
        """
        self.root = root
        self.download = download
        self.biased = biased
        self.bottom_fraction = bottom_fraction
        self.bottom_classes = list(DEFAULT_BOTTOM_CLASSES) if bottom_classes is None else list(bottom_classes)
        self.val_fraction = val_fraction
        self.max_train_samples = max_train_samples
        self.seed = seed
        self.split = split
        self._splits: dict[str, ImageSplit] | None = None

    @property
    def fine_class_names(self) -> list[str]:
        """The 100 fine class names in fine-label order."""
        return list(FINE_CLASS_NAMES)

    @property
    def superclass_members(self) -> list[list[str]]:
        """Per superclass, its 5 fine class names in subgroup order: ``[c][g]`` names (class c, subgroup g)."""
        return [list(members) for members in SUPERCLASS_MEMBERS.values()]

    @property
    def folder(self) -> Path:
        """Where the pickled batches live."""
        return Path(self.root) / FOLDER_NAME

    def validate(self) -> None:
        if self.split not in SPLITS:
            raise ConfigError(f"cifar20: split must be one of {list(SPLITS)}, got {self.split!r}: 'zhang2024' is the "
                              "cited CIFAR-20/100 code's 40% train / 40% held out / 20% val split by file order")
        if not 0 < self.bottom_fraction <= 1:
            raise ConfigError(f"cifar20: bottom_fraction must be in (0, 1], got {self.bottom_fraction}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"cifar20: val_fraction must be in (0, 1), got {self.val_fraction}")
        unknown = [name for name in self.bottom_classes if name not in _FINE_INDEX]
        if unknown:
            raise ConfigError(
                f"cifar20: bottom_classes has unknown CIFAR-100 fine class names {unknown}; use names such as "
                f"{DEFAULT_BOTTOM_CLASSES[:4]} (the full list is FINE_CLASS_NAMES in datamodules/cifar.py)"
            )
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise ConfigError(f"cifar20: max_train_samples must be >= 1 or null, got {self.max_train_samples}")
        if not self.download:
            missing = [name for name in BATCH_FILES if not (self.folder / name).is_file()]
            if missing:
                where = f"{self.folder}" if self.folder.is_dir() else f"{self.folder} (folder missing)"
                raise ConfigError(
                    f"cifar20: expected CIFAR-100 files {', '.join(missing)} in {where}; set download: true on a "
                    f"machine with internet, or point root at the folder holding {FOLDER_NAME}"
                )

    def load(self) -> dict[str, ImageSplit]:
        if self._splits is None:
            self.validate()
            if self.download:
                self._download()
            self._check_meta()
            train_images, train_fine = self._read_batch("train")
            test_images, test_fine = self._read_batch("test")
            if self.split == "zhang2024":
                val, train = self._zhang_split(train_fine)
            else:
                val, train = stratified_split(train_fine, [self.val_fraction], seeded_generator(self.seed, _STREAM_VAL))
                if self.biased:
                    train = self._drop_bottom_images(train, train_fine)
            if self.max_train_samples is not None:
                generator = seeded_generator(self.seed, _STREAM_SUBSAMPLE)
                train = train[stratified_subsample(train_fine[train], self.max_train_samples, generator)]
            self._splits = {
                "train": self._split(train_images[train], train_fine[train]),
                "val": self._split(train_images[val], train_fine[val]),
                "test": self._split(test_images, test_fine),
            }
        return self._splits

    def _zhang_split(self, fine: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(val, train) indices of the training file as the cited code takes them: per fine class in file order,
        train = the first int(0.4 n) (a biased bottom class: the first int(bottom_fraction * that)), val = the images
        from int(0.8 n) on; the ones between are its held-out share. Integer truncation as in that code."""
        bottom = {_FINE_INDEX[name] for name in self.bottom_classes} if self.biased else set()
        train, val = [], []
        for fine_label in range(len(FINE_CLASS_NAMES)):
            members = torch.nonzero(fine == fine_label).squeeze(1)  # ascending: the order of the file
            n_train, held_out_end = int(len(members) * ZHANG_TRAIN_SHARE), int(len(members) * ZHANG_HELD_OUT_END)
            kept = members[:n_train]
            if fine_label in bottom:
                kept = kept[: int(len(kept) * self.bottom_fraction)]
            train.append(kept)
            val.append(members[held_out_end:])
        return torch.cat(val).sort().values, torch.cat(train).sort().values

    def _drop_bottom_images(self, train: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        """Indices of ``train`` left after each bottom fine class keeps round(bottom_fraction * n) of its images."""
        generator = seeded_generator(self.seed, _STREAM_BOTTOM)
        keep = torch.ones(len(train), dtype=torch.bool)
        for fine_label in sorted({_FINE_INDEX[name] for name in self.bottom_classes}):
            members = torch.nonzero(fine[train] == fine_label).squeeze(1)
            kept = round(self.bottom_fraction * len(members))
            dropped = members[torch.randperm(len(members), generator=generator)[kept:]]
            keep[dropped] = False
        return train[keep]

    @staticmethod
    def _split(images: torch.Tensor, fine: torch.Tensor) -> ImageSplit:
        fine_numpy = fine.numpy()
        return ImageSplit(
            images=images,
            labels=torch.from_numpy(COARSE_OF_FINE[fine_numpy]),
            groups=torch.from_numpy(SUBGROUP_OF_FINE[fine_numpy]),
        )

    def _download(self) -> None:
        """Fetch and unpack the official archive (checksum verified by torchvision) unless the files are there."""
        if all((self.folder / name).is_file() for name in BATCH_FILES):
            return
        from torchvision.datasets import CIFAR100
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            # torchvision's URL and md5, without CIFAR100.__init__, which would unpickle the batches unrestricted
            download_and_extract_archive(CIFAR100.url, self.root, filename=CIFAR100.filename, md5=CIFAR100.tgz_md5)
        except (OSError, RuntimeError) as error:
            raise ConfigError(
                f"cifar20: could not download CIFAR-100 into {self.root!r} ({error}); set download: true on a "
                f"machine with internet, or point root at the folder holding {FOLDER_NAME}"
            ) from error

    def _check_meta(self) -> None:
        """The names in ``meta`` must be the standard ones, or the labels below would mean something else."""
        meta = read_cifar_pickle(self.folder / "meta")
        fine = _as_names(meta.get("fine_label_names", []))
        coarse = _as_names(meta.get("coarse_label_names", []))
        if fine != FINE_CLASS_NAMES or coarse != COARSE_CLASS_NAMES:
            raise ConfigError(
                f"cifar20: {self.folder / 'meta'} does not list the standard 100 fine / 20 coarse CIFAR-100 names "
                f"(got {len(fine)} fine, {len(coarse)} coarse, e.g. {fine[:3]}); point root at the folder holding "
                f"the original {FOLDER_NAME}"
            )

    def _read_batch(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images uint8 (N, 3, 32, 32) and fine labels int64 (N,) of one batch file, checked against the table."""
        path = self.folder / split
        batch = read_cifar_pickle(path)
        missing = [key for key in ("data", "fine_labels", "coarse_labels") if key not in batch]
        if missing:
            raise ConfigError(f"cifar20: {path} lacks {missing}; is it a CIFAR-100 (not CIFAR-10) batch?")
        data = np.asarray(batch["data"])
        fine = np.asarray(batch["fine_labels"], dtype=np.int64)
        coarse = np.asarray(batch["coarse_labels"], dtype=np.int64)
        pixels = int(np.prod(IMAGE_SHAPE))
        well_formed = data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == pixels
        if not well_formed or not len(data) == len(fine) == len(coarse):
            raise ConfigError(
                f"cifar20: {path} holds data {data.dtype} {data.shape} with {len(fine)} fine / {len(coarse)} coarse "
                f"labels; expected uint8 (N, {pixels}) and N of each"
            )
        if len(fine) and (fine.min() < 0 or fine.max() >= len(FINE_CLASS_NAMES)):
            raise ConfigError(f"cifar20: {path} has fine labels outside 0-99")
        wrong = np.nonzero(COARSE_OF_FINE[fine] != coarse)[0]
        if len(wrong):
            first = int(wrong[0])
            raise ConfigError(
                f"cifar20: {path} puts fine class {FINE_CLASS_NAMES[fine[first]]!r} in superclass {int(coarse[first])}"
                f", but CIFAR-100 has it in {COARSE_OF_FINE[fine[first]]} ({len(wrong)} such samples); point root at "
                f"the original {FOLDER_NAME}"
            )
        # each row is the red, green, blue 32x32 planes one after the other, each plane row-major
        images = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, *IMAGE_SHAPE))
        return images, torch.from_numpy(fine)
