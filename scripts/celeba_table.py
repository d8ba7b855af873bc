"""Turn CelebA's official attribute and partition files into the table that `datamodules/table.py` reads.

    python scripts/celeba_table.py data/celeba --label Blond_Hair --subgroup Male --out data/celeba/blond_male.csv

``data/celeba`` holds ``list_attr_celeba.txt`` (a count line, the 40 attribute names, then ``<file> +-1 x 40`` per
image), ``list_eval_partition.txt`` (``<file> 0|1|2``: train / val / test, the official split) and the images in
``img_align_celeba/``. The table has the columns path (relative to the CelebA folder), label and subgroup (0 for an
attribute's -1, 1 for its +1) and split (train / val / test).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

PARTITIONS = {"0": "train", "1": "val", "2": "test"}


def celeba_rows(folder: Path, label: str, subgroup: str, images: str = "img_align_celeba") -> list[dict[str, str]]:
    """One row per image of the attribute file, in its order; ValueError naming a missing attribute or file."""
    attributes = (folder / "list_attr_celeba.txt").read_text().split("\n")
    names = attributes[1].split()
    for wanted in (label, subgroup):
        if wanted not in names:
            raise ValueError(f"{wanted!r} is not a CelebA attribute: choose one of {names}")
    partition = dict(line.split() for line in (folder / "list_eval_partition.txt").read_text().splitlines()
                     if line.strip())
    rows = []
    for line in attributes[2:]:
        fields = line.split()
        if not fields:
            continue
        values = dict(zip(names, fields[1:]))
        rows.append({"path": f"{images}/{fields[0]}", "label": "1" if values[label] == "1" else "0",
                     "subgroup": "1" if values[subgroup] == "1" else "0",
                     "split": PARTITIONS[partition[fields[0]]]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="the CelebA folder (list_attr_celeba.txt, list_eval_partition.txt)")
    parser.add_argument("--label", default="Blond_Hair", help="the attribute used as the class label")
    parser.add_argument("--subgroup", default="Male", help="the attribute used as the subgroup")
    parser.add_argument("--out", type=Path, required=True, help="the CSV to write")
    options = parser.parse_args(argv)
    try:
        rows = celeba_rows(options.folder, options.label, options.subgroup)
    except (OSError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with open(options.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "subgroup", "split"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
