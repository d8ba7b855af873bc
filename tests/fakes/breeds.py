"""Seeded fake ImageNet tree for BREEDS Living-17 and fake BREEDS hierarchy files, in the real on-disk formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import timm
from PIL import Image

from datamodules.breeds import LIVING17

#: The ImageNet index range (inclusive) of every dataset class below each Living-17 superclass in BREEDS'
#: modified hierarchy (MadryLab/BREEDS-Benchmarks, imagenet_class_hierarchy/modified/class_hierarchy.txt, read
#: edge by edge: e.g. lizard n01674464 reaches the 11 classes 38-48 through 9 intermediate nodes, dog n02084071
#: the 118 classes 151-268, parrot n01816887 the 4 classes 87-90 two of them one level further down).
LIVING17_LEAF_RANGES: dict[str, tuple[int, int]] = {
    "n01629276": (25, 29), "n01662784": (33, 37), "n01674464": (38, 48), "n01726692": (52, 68),
    "n01772222": (72, 77), "n01795088": (80, 83), "n01816887": (87, 90), "n01976957": (118, 121),
    "n02084071": (151, 268), "n02114100": (269, 272), "n02118333": (277, 280), "n02121808": (281, 285),
    "n02131653": (294, 297), "n02164464": (300, 307), "n02274259": (321, 326), "n02470325": (365, 369),
    "n02484322": (370, 382),
}  # fmt: skip
#: level-5 living nodes that BREEDS leaves out for having fewer than 4 dataset classes (frog: 30-32)
EXCLUDED_LEAF_RANGES: dict[str, tuple[int, int]] = {"n01639765": (30, 32)}


def imagenet_synsets() -> list[str]:
    """The 1000 ImageNet-1k wnids in class-index order, as shipped with timm."""
    synsets = (Path(timm.__file__).parent / "data" / "_info" / "imagenet_synsets.txt").read_text().split()
    assert len(synsets) == 1000
    return synsets


def write_breeds_info(
    info_dir: str | Path,
    edges: list[tuple[str, str]],
    classes: list[tuple[int, str, str]],
    node_names: dict[str, str],
) -> str:
    """Write ``class_hierarchy.txt``, ``dataset_class_info.json`` and ``node_names.txt`` as BREEDS ships them."""
    info_dir = Path(info_dir)
    info_dir.mkdir(parents=True, exist_ok=True)
    (info_dir / "class_hierarchy.txt").write_text("".join(f"{parent} {child}\n" for parent, child in edges))
    (info_dir / "dataset_class_info.json").write_text(json.dumps([list(entry) for entry in classes]))
    (info_dir / "node_names.txt").write_text("".join(f"{wnid}\t{name}\n" for wnid, name in node_names.items()))
    return str(info_dir)


def write_living17_info(info_dir: str | Path) -> str:
    """A hierarchy whose level-5 living nodes have the real Living-17 leaf sets, so ``make_living17`` must
    give the published table; plus a too-small living node and a large non-living one, both to be left out.

    Edges are written superclass by superclass in reverse order: the builder must sort them itself.
    """
    synsets = imagenet_synsets()
    edges = [("n00001740", "n00004258"), ("n00004258", "dummy_animal"), ("n00001740", "dummy_object")]
    names = {"n00001740": "entity", "n00004258": "living thing", "dummy_animal": "animal"}
    used: list[int] = []
    ranges = {**LIVING17_LEAF_RANGES, **EXCLUDED_LEAF_RANGES}
    for number, (wnid, (first, last)) in enumerate(sorted(ranges.items(), reverse=True)):
        # animal (2) -> order (3) -> family (4) -> superclass (5) -> classes (6)
        edges += [("dummy_animal", f"dummy_order{number}"), (f"dummy_order{number}", f"dummy_family{number}"),
                  (f"dummy_family{number}", wnid)]  # fmt: skip
        edges += [(wnid, synsets[index]) for index in range(first, last + 1)]
        used += range(first, last + 1)
    # a non-living level-5 node with enough classes: outside n00004258, so not a Living-17 superclass
    edges += [("dummy_object", "dummy_o2"), ("dummy_o2", "dummy_o3"), ("dummy_o3", "dummy_o4"),
              ("dummy_o4", "dummy_o5")] + [("dummy_o5", synsets[index]) for index in range(400, 410)]  # fmt: skip
    used += range(400, 410)
    for superclass in LIVING17:
        names[superclass.wnid] = f"{superclass.name}, synonym"
    classes = [(index, synsets[index], f"class {index}") for index in sorted(used)]
    return write_breeds_info(info_dir, edges, classes, names)


def colour_of(label: int, group: int) -> tuple[int, int]:
    """(red, green) of every fake image of (superclass label, subgroup): tests read the label back from pixels."""
    return 12 + 13 * label, 40 + 60 * group


def write_fake_imagenet_living17(
    root: str | Path, n_train_per_class: int = 4, n_val_per_class: int = 2, size: int = 32, seed: int = 0,
    width: int | None = None,
) -> str:
    """Write ``<root>/imagenet/{train,val}/<wnid>/*.JPEG`` for the 68 Living-17 ImageNet classes; return the root.

    Each image is flat: red and green encode (label, subgroup) (``colour_of``), blue is seeded per image. Images are
    ``size`` pixels high and ``width`` (default ``size``) wide. Train files are named like ImageNet's
    (``<wnid>_<n>.JPEG``), val files like ``ILSVRC2012_val_<8 digits>.JPEG``.
    """
    width = size if width is None else int(width)
    imagenet_root = Path(root) / "imagenet"
    rng = np.random.default_rng(seed)
    val_counter = 0
    for split, n_per_class in (("train", n_train_per_class), ("val", n_val_per_class)):
        for label, superclass in enumerate(LIVING17):
            for group, sub in enumerate(superclass.subclasses):
                class_dir = imagenet_root / split / sub.wnid
                class_dir.mkdir(parents=True, exist_ok=True)
                for i in range(n_per_class):
                    if split == "train":
                        stem = f"{sub.wnid}_{i}"
                    else:
                        val_counter += 1
                        stem = f"ILSVRC2012_val_{val_counter:08d}"
                    pixels = np.empty((size, width, 3), dtype=np.uint8)
                    pixels[..., :2] = colour_of(label, group)
                    pixels[..., 2] = rng.integers(0, 256)
                    Image.fromarray(pixels, "RGB").save(class_dir / f"{stem}.JPEG", format="JPEG", quality=95)
    return str(imagenet_root)


def add_striped_living17_image(imagenet_root: str | Path, label: int = 0, group: int = 0, height: int = 40,
                               width: int = 120, stem: str = "n_striped") -> str:
    """Add one lossless landscape image to the train folder of (label, subgroup): red | green | blue vertical
    stripes of widths 1/4 | 1/2 | 1/4. A view that keeps the aspect and crops the centre sees only green (when the
    width is at least twice the height); a squashing resize keeps red and blue at the borders. Returns its stem."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    first, last = width // 4, 3 * width // 4
    pixels[:, :first, 0], pixels[:, first:last, 1], pixels[:, last:, 2] = 255, 255, 255
    wnid = LIVING17[label].subclasses[group].wnid
    Image.fromarray(pixels).save(Path(imagenet_root) / "train" / wnid / f"{stem}.png")
    return stem
