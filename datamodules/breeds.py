"""ImageNet BREEDS Living-17 (Santurkar, Tsipras, Madry 2021) as a real data source (paper appendix A, figure 7).

17 superclasses of living things, 4 ImageNet classes each. As in CIFAR-20, the label is the superclass (0-16) and
the subgroup is the subclass (0-3, its position in the superclass's list below), so a classifier never sees the
subclass and its per-subclass accuracy is the subgroup-fairness question (figure 7: the best and the worst subclass
across generations, ``acc_rank``).

Training split: Living-17's *source* split in the sense that every subclass is seen in training: there is no
BREEDS source/target split of the subclasses, all 4 subclasses of every superclass are in train, validation and
test (ImageNet train -> train and a seeded validation carved from it, stratified by subclass; ImageNet val -> test).
With the published order below, subgroups 0-1 are BREEDS' source subclasses and 2-3 its target subclasses
(``make_living17(split="rand")`` splits the same draw in halves).

The 17 x 4 table is built the way the ``robustness`` library's ``make_living17`` builds it, from the BREEDS
hierarchy files the user supplies (``info_dir``; ``datamodules.breeds_hierarchy``, read as text and JSON, nothing
unpickled), and must equal the published table shipped below (``LIVING17``); without ``info_dir`` the published
table is used.

Layout as for Hard ImageNet (``datamodules.imagenet_folders``): ``<imagenet_root>/<split>/<wnid>/<file>`` (ImageNet
val re-sorted into wnid folders), decoded lazily. The classifiers' view is ImageNet's usual evaluation preprocessing
(the ``robustness`` library's, with which BREEDS was published): the shorter side resized to ``resize``, centre crop
``image_size`` (``squash: true``: both sides resized, as Hard ImageNet's authors do). A generator sees the same files
through its own view (Stable Diffusion: shorter side resized to 512, centre crop), and generated images are stored
as RGB squares at any resolution.
"""

from __future__ import annotations

import logging
from pathlib import Path

from common.errors import ConfigError
from datamodules.breeds_hierarchy import REQUIRED_FILES, Subclass, Superclass, make_living17
from datamodules.facts import DatasetFacts
from datamodules.imagenet_folders import ImageFile, ImageFolderSource, files_by_stem

log = logging.getLogger(__name__)


def _superclass(wnid: str, name: str, *subclasses: tuple[int, str, str]) -> Superclass:
    return Superclass(
        wnid, name, tuple(Subclass(sub_wnid, sub_name, index) for index, sub_wnid, sub_name in subclasses)
    )


#: Living-17 in label order; each superclass's (ImageNet index, wnid, name) subclasses in subgroup order.
#: Source: the output of ``make_living17(info_dir, split="rand")`` in MadryLab/BREEDS-Benchmarks,
#: "Constructing BREEDS datasets.ipynb" (last cell: superclass names, source then target subclasses with their
#: ImageNet indices; compared entry by entry); index -> wnid from the same repository's
#: imagenet_class_hierarchy/wordnet/dataset_class_info.json (and timm's imagenet_synsets.txt, checked by the tests);
#: superclass wnids and their leaf sets from its imagenet_class_hierarchy/modified/class_hierarchy.txt, on which
#: ``breeds_hierarchy.make_living17`` gives exactly this table (``tests/fakes/breeds.py`` rebuilds those leaf sets).
#: Names are WordNet's first synonym.
LIVING17: tuple[Superclass, ...] = (
    _superclass("n01629276", "salamander",
                (27, "n01631663", "eft"), (29, "n01632777", "axolotl"),
                (26, "n01630670", "common newt"), (28, "n01632458", "spotted salamander")),
    _superclass("n01662784", "turtle",
                (37, "n01669191", "box turtle"), (34, "n01665541", "leatherback turtle"),
                (33, "n01664065", "loggerhead"), (35, "n01667114", "mud turtle")),
    _superclass("n01674464", "lizard",
                (41, "n01685808", "whiptail"), (44, "n01689811", "alligator lizard"),
                (47, "n01694178", "African chameleon"), (38, "n01675722", "banded gecko")),
    _superclass("n01726692", "snake",
                (60, "n01740131", "night snake"), (57, "n01735189", "garter snake"),
                (65, "n01751748", "sea snake"), (61, "n01742172", "boa constrictor")),
    _superclass("n01772222", "spider",
                (76, "n01774750", "tarantula"), (72, "n01773157", "black and gold garden spider"),
                (74, "n01773797", "garden spider"), (77, "n01775062", "wolf spider")),
    _superclass("n01795088", "grouse",
                (81, "n01796340", "ptarmigan"), (83, "n01798484", "prairie chicken"),
                (82, "n01797886", "ruffed grouse"), (80, "n01795545", "black grouse")),
    _superclass("n01816887", "parrot",
                (88, "n01818515", "macaw"), (90, "n01820546", "lorikeet"),
                (87, "n01817953", "African grey"), (89, "n01819313", "sulphur-crested cockatoo")),
    _superclass("n01976957", "crab",
                (118, "n01978287", "Dungeness crab"), (120, "n01980166", "fiddler crab"),
                (119, "n01978455", "rock crab"), (121, "n01981276", "king crab")),
    _superclass("n02084071", "dog",
                (163, "n02088466", "bloodhound"), (154, "n02086079", "Pekinese"),
                (257, "n02111500", "Great Pyrenees"), (157, "n02086910", "papillon")),
    _superclass("n02114100", "wolf",
                (272, "n02114855", "coyote"), (271, "n02114712", "red wolf"),
                (270, "n02114548", "white wolf"), (269, "n02114367", "timber wolf")),
    _superclass("n02118333", "fox",
                (280, "n02120505", "grey fox"), (279, "n02120079", "Arctic fox"),
                (277, "n02119022", "red fox"), (278, "n02119789", "kit fox")),
    _superclass("n02121808", "domestic cat",
                (282, "n02123159", "tiger cat"), (285, "n02124075", "Egyptian cat"),
                (283, "n02123394", "Persian cat"), (284, "n02123597", "Siamese cat")),
    _superclass("n02131653", "bear",
                (297, "n02134418", "sloth bear"), (295, "n02133161", "American black bear"),
                (296, "n02134084", "ice bear"), (294, "n02132136", "brown bear")),
    _superclass("n02164464", "beetle",
                (305, "n02172182", "dung beetle"), (306, "n02174001", "rhinoceros beetle"),
                (302, "n02167151", "ground beetle"), (303, "n02168699", "long-horned beetle")),
    _superclass("n02274259", "butterfly",
                (325, "n02281406", "sulphur butterfly"), (321, "n02276258", "admiral"),
                (324, "n02280649", "cabbage butterfly"), (322, "n02277742", "ringlet")),
    _superclass("n02470325", "ape",
                (368, "n02483362", "gibbon"), (365, "n02480495", "orangutan"),
                (366, "n02480855", "gorilla"), (367, "n02481823", "chimpanzee")),
    _superclass("n02484322", "monkey",
                (377, "n02490219", "marmoset"), (380, "n02493509", "titi"),
                (381, "n02493793", "spider monkey"), (379, "n02492660", "howler monkey")),
)  # fmt: skip
SUBCLASSES_PER_SUPERCLASS = 4
GROUP_NAMES = tuple(f"sub{index}" for index in range(SUBCLASSES_PER_SUPERCLASS))

_WHERE_TO_GET = (
    "ImageNet-1k (ILSVRC2012) comes from https://image-net.org (val re-sorted into <wnid> folders); "
    "the BREEDS hierarchy files (class_hierarchy.txt, dataset_class_info.json, node_names.txt) come from "
    "https://github.com/MadryLab/BREEDS-Benchmarks (imagenet_class_hierarchy/modified; info_dir: null uses the "
    "published table shipped with this tool instead)"
)


class Living17(ImageFolderSource):
    """BREEDS Living-17: labels = 17 superclasses, subgroups = their 4 ImageNet subclasses (G = 4).

    ``superclass_members[c][g]`` names the ImageNet class of (class c, subgroup g). Samples are
    ``(image uint8 (3,S,S), label, subgroup)``.

    Args:
        imagenet_root: folder holding ``train/<wnid>/`` and ``val/<wnid>/`` image folders.
        info_dir: folder with the BREEDS hierarchy files (class_hierarchy.txt, dataset_class_info.json,
            node_names.txt; BREEDS-Benchmarks' imagenet_class_hierarchy/modified): Living-17 is built from them the
            way ``robustness``' ``make_living17`` builds it and must equal the published table; None uses the
            published table.
        image_size: side of the square centre crop the classifiers see.
        resize: the classifiers' resize before the crop (the shorter side; both sides with ``squash``);
            >= image_size.
        squash: resize both sides to ``resize`` (aspect not kept, Hard ImageNet's preprocessing).
        val_fraction: share of each subclass's ImageNet-train images held out for validation, in [0, 1).
        test_split: the on-disk split read as the test set (ImageNet val).
        max_per_class: keep at most this many images of each ImageNet class (= each subgroup) per on-disk
            split, chosen with ``seed``, for quick runs; null keeps all.
        seed: seeds ``max_per_class`` and the validation carve.
    """

    title = "BREEDS Living-17"
    where_to_get = _WHERE_TO_GET
    usual_preprocessing = "ImageNet's usual resize=256, image_size=224"

    def __init__(
        self,
        imagenet_root: str,
        info_dir: str | None = None,
        image_size: int = 224,
        resize: int = 256,
        squash: bool = False,
        val_fraction: float = 0.1,
        test_split: str = "val",
        max_per_class: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(imagenet_root, image_size=image_size, resize=resize, squash=squash,
                         val_fraction=val_fraction, test_split=test_split, max_per_class=max_per_class, seed=seed)
        self.info_dir = None if info_dir is None else Path(info_dir).expanduser()
        #: filled by validate(): {split: {"images": n, "per_subclass": [[n_c0g0, ..., n_c0g3], ...]}}
        self.counts: dict[str, dict] = {}

    # ----------------------------------------------------------------- facts
    @property
    def facts(self) -> DatasetFacts:
        return DatasetFacts(name="breeds_living17", class_names=tuple(superclass.name for superclass in LIVING17),
                            image_shape=self.crop_shape, classifier_view=self.crop_view, group_names=GROUP_NAMES,
                            subgroups="per_class", subgroup_noun="subclass",
                            fairness_reading="cells")

    @property
    def superclass_members(self) -> list[list[str]]:
        """Per superclass, its 4 ImageNet class names in subgroup order: ``[c][g]`` names (class c, subgroup g)."""
        return [[sub.name for sub in superclass.subclasses] for superclass in LIVING17]

    @property
    def wnids(self) -> list[list[str]]:
        """``[c][g]``: the WordNet id (ImageNet folder name) of (class c, subgroup g)."""
        return [[sub.wnid for sub in superclass.subclasses] for superclass in LIVING17]

    # ------------------------------------------------------------ validation
    def other_problems(self) -> list[str]:
        """The BREEDS files in info_dir, if given, must exist and rebuild the published Living-17."""
        if self.info_dir is None:
            return []
        if not self.info_dir.is_dir():
            return [f"info_dir {self.info_dir} (the BREEDS hierarchy files) does not exist (or set info_dir: null "
                    "to use the published table)"]
        missing = [f"BREEDS file {self.info_dir / name} is missing" for name in REQUIRED_FILES
                   if not (self.info_dir / name).is_file()]  # fmt: skip
        if missing:
            return missing
        try:
            built = make_living17(self.info_dir)
        except ConfigError as error:
            return [str(error)]
        published = [(sc.wnid, [sub.wnid for sub in sc.subclasses]) for sc in LIVING17]
        rebuilt = [(sc.wnid, [sub.wnid for sub in sc.subclasses]) for sc in built]
        if rebuilt == published:
            return []
        if len(rebuilt) != len(published):
            detail = f"{len(rebuilt)} superclasses instead of 17"
        else:
            c = next(i for i, (got, want) in enumerate(zip(rebuilt, published)) if got != want)
            detail = f"superclass {c} is {rebuilt[c]} instead of {published[c]} ({LIVING17[c].name})"
        return [
            f"the BREEDS files in {self.info_dir} do not rebuild the published Living-17 ({detail}); use the "
            "'modified' hierarchy of BREEDS-Benchmarks, or set info_dir: null"
        ]

    def index_files(self) -> tuple[list[str], dict[str, list[ImageFile]]]:
        """Every image of the 68 subclass folders of each split; a missing or empty folder is a problem."""
        problems: list[str] = []
        index: dict[str, list[ImageFile]] = {}
        if not self.imagenet_root.is_dir():
            return [f"imagenet_root {self.imagenet_root} does not exist"], index
        for split in self.splits:
            split_dir = self.imagenet_root / split
            if not split_dir.is_dir():
                problems.append(f"ImageNet split folder {split_dir} is missing")
                continue
            files: list[ImageFile] = []
            per_subclass: list[list[int]] = []
            for label, superclass in enumerate(LIVING17):
                per_subclass.append([])
                for group, sub in enumerate(superclass.subclasses):
                    class_dir = split_dir / sub.wnid
                    where = f"{sub.name}, subgroup {group} of {superclass.name}"
                    if not class_dir.is_dir():
                        problems.append(f"class folder {class_dir} ({where}) is missing")
                        per_subclass[-1].append(0)
                        continue
                    paths = [str(path) for _, path in sorted(files_by_stem(class_dir).items())]
                    if not paths:
                        problems.append(f"class folder {class_dir} ({where}) has no image")
                    per_subclass[-1].append(len(paths))
                    files.extend(ImageFile(path, label, group) for path in paths)
            index[split] = files
            self.counts[split] = {"images": len(files), "per_subclass": per_subclass}
        return problems, index

    def log_index(self) -> None:
        for split, count in self.counts.items():
            log.info("BREEDS Living-17 %s: %d images in 68 ImageNet classes", split, count["images"])
