"""Seeded fake CelebA, Waterbirds and FairFace folders in their real on-disk layouts (tiny JPEGs), and a generic
table, for ``datamodules.table.TableImageSource``. Each image's colour encodes its (label, subgroup) cell, so a
classifier or oracle can learn them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

CELL_COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40), (200, 40, 200), (40, 200, 200),
                (120, 120, 120), (240, 160, 60)]


def write_image(path: Path, cell: int, rng: np.random.Generator, size: tuple[int, int] = (20, 24)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = rng.integers(-20, 20, size=(size[1], size[0], 3))
    pixels = np.clip(np.array(CELL_COLOURS[cell % len(CELL_COLOURS)]) + noise, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=95)


def make_celeba(root: Path, per_cell: int = 4, seed: int = 0) -> Path:
    """``list_attr_celeba.txt`` (40 attributes), ``list_eval_partition.txt`` and ``img_align_celeba/*.jpg``."""
    rng = np.random.default_rng(seed)
    names = [f"Attr_{i}" for i in range(38)]
    names[9:9] = ["Blond_Hair"]
    names[20:20] = ["Male"]
    lines, partition, k = [], [], 0
    for split in (0, 1, 2):
        for blond in (0, 1):
            for male in (0, 1):
                for _ in range(per_cell):
                    k += 1
                    file = f"{k:06d}.jpg"
                    values = ["-1"] * 40
                    values[names.index("Blond_Hair")] = "1" if blond else "-1"
                    values[names.index("Male")] = "1" if male else "-1"
                    lines.append(" ".join([file, *values]))
                    partition.append(f"{file} {split}")
                    write_image(root / "img_align_celeba" / file, 2 * blond + male, rng, (18, 22))
    (root / "list_attr_celeba.txt").write_text("\n".join([str(k), " ".join(names), *lines]) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    return root


def make_waterbirds(root: Path, per_cell: int = 4, seed: int = 0) -> Path:
    """``waterbird_complete95_forest2water2/metadata.csv`` and ``<species folder>/<file>.jpg``."""
    rng = np.random.default_rng(seed)
    folder = root / "waterbird_complete95_forest2water2"
    rows, k = [], 0
    for split in (0, 1, 2):
        for y in (0, 1):
            for place in (0, 1):
                for _ in range(per_cell):
                    k += 1
                    species = "001.Black_footed_Albatross" if y else "100.Brown_Pelican"
                    name = f"{species}/{species.split('.')[1]}_{k:04d}.jpg"
                    rows.append({"img_id": k, "img_filename": name, "y": y, "split": split, "place": place,
                                 "place_filename": f"/b/bamboo_forest/{k:08d}.jpg"})
                    write_image(folder / name, 2 * y + place, rng, (24, 20))
    with open(folder / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


FAIRFACE_RACES = ("White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian", "Middle Eastern")


def make_fairface(root: Path, per_cell: int = 3, seed: int = 0) -> Path:
    """``fairface_label_{train,val}.csv`` (file, age, gender, race, service_test) and ``{train,val}/<n>.jpg``."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", per_cell * 2), ("val", per_cell)):
        rows, k = [], 0
        for gender in ("Male", "Female"):
            for r, race in enumerate(FAIRFACE_RACES):
                for _ in range(count):
                    k += 1
                    rows.append({"file": f"{split}/{k}.jpg", "age": "20-29", "gender": gender, "race": race,
                                 "service_test": "True"})
                    write_image(root / split / f"{k}.jpg", (gender == "Male") * 4 + r % 4, rng, (22, 22))
        with open(root / f"fairface_label_{split}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return root


def make_table(root: Path, per_cell: int = 6, classes: int = 2, groups: int = 2, split: bool = False,
               seed: int = 0) -> Path:
    """A generic table ``images.csv`` (path, label, subgroup[, split]) with named string labels and subgroups."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(classes):
        for g in range(groups):
            for i in range(per_cell):
                path = f"img/c{c}/g{g}_{i}.png"
                row = {"path": path, "label": f"class{c}", "subgroup": f"group{g}"}
                if split:
                    row["split"] = ("train", "train", "test", "val")[i % 4]
                rows.append(row)
                write_image(root / path, c * groups + g, rng, (16, 16))
    with open(root / "images.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root / "images.csv"
