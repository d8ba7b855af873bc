"""Any subgroup-annotated image dataset from one table (CSV or Parquet): one row per image with its path (relative
to an image root), class label and subgroup, optionally its split. CelebA, Waterbirds and FairFace are configs of
this one source (``configs/celeba_blond.yaml``, ``configs/waterbirds.yaml``, ``configs/fairface.yaml``).

* ``table``: one file, or ``{split: file}`` (FairFace ships its train and val lists apart). Columns are named by
  ``path_column``, ``label_column``, ``subgroup_column`` and ``split_column``; the values of ``split_column`` are
  mapped to train/val/test by ``split_names`` (Waterbirds' and CelebA's 0/1/2). Without a split column, a seeded
  split stratified by (class, subgroup) cell carves ``val_fraction`` and ``test_fraction`` of every cell; a table
  without val gets val carved from train the same way.
* ``class_names`` / ``group_names``: the table's label (subgroup) values in index order, or a mapping from value to
  name; by default the sorted distinct values, named by themselves. The class names are what the CLIP filter's prompts
  read ("a photo of a blond person").
* Subgroups are given per image (not read from pixels): u_t needs the learned oracle (``quality.oracle``), as for
  CIFAR-20. Images are decoded lazily through the classifiers' view (resize, centre crop ``image_size``).

Nothing is opened at validation but the table; every missing file is listed in one error that says where to get
the data (``where_to_get``).
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from common.errors import ConfigError
from common.image_views import ImageView
from datamodules.base import RealDataSource
from datamodules.facts import DatasetFacts
from datamodules.imagenet_folders import ImageFile, ImageFolderSplit, carve_validation, problems_error, subsample_cells

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


def read_table(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV (header line first) or Parquet file, every value as text."""
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as parquet
        except ImportError as err:
            raise ConfigError(f"{path} is a Parquet table: install pyarrow (pip install pyarrow) or convert it to "
                              "CSV") from err
        columns = parquet.read_table(path).to_pydict()
        names = list(columns)
        return [{k: str(columns[k][i]) for k in names} for i in range(len(columns[names[0]]) if names else 0)]
    with open(path, newline="") as f:
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in csv.DictReader(f)]


def _naming(values: set[str], names, what: str) -> tuple[dict[str, int], list[str], list[str]]:
    """(value -> index, names in index order, problems) from the table's values and the configured naming."""
    if names is None:
        ordered = sorted(values, key=lambda v: (not v.lstrip("-").isdigit(), int(v) if v.lstrip("-").isdigit()
                                                else 0, v))
        return {v: i for i, v in enumerate(ordered)}, ordered, []
    if isinstance(names, Mapping):
        keys = [str(k) for k in names]
        index = {k: i for i, k in enumerate(keys)}
        shown = [str(names[k]) for k in names]
    else:
        index = {str(v): i for i, v in enumerate(names)}
        shown = [str(v) for v in names]
    unknown = sorted(values - set(index))
    problems = [f"{what} values {unknown[:5]} of the table are not in {what}_names {list(index)}"] if unknown else []
    return index, shown, problems


class TableImageSource(RealDataSource):
    """A dataset given as a table of image paths with class labels and subgroups.

    Args:
        table: the CSV/Parquet file, or ``{split: file}``.
        image_root: the folder the ``path_column`` entries are relative to.
        name: the dataset's name in results and reports.
        path_column, label_column, subgroup_column: the table's columns.
        split_column: the column naming each row's split (None, or absent from the table: a seeded split).
        split_names: table split value -> train/val/test (default: the values are train/val/test).
        class_names, group_names: see the module docstring.
        subgroup_noun: what a subgroup is, in words ("gender", "background", "race").
        image_size: side of the centre crop the classifiers see; resize: the shorter side first (>= image_size).
        val_fraction, test_fraction: shares of every (class, subgroup) cell carved when the table has no such split.
        max_per_class: keep at most this many images of every (class, subgroup) cell per split (quick runs).
        seed: seeds the carved splits and ``max_per_class``.
        where_to_get: where to get the data, said with every missing path.
    """

    def __init__(self, table: str | Mapping[str, str], image_root: str, name: str = "image_table",
                 path_column: str = "path", label_column: str = "label", subgroup_column: str = "subgroup",
                 split_column: str | None = "split", split_names: Mapping[str, str] | None = None,
                 class_names: Sequence[str] | Mapping[str, str] | None = None,
                 group_names: Sequence[str] | Mapping[str, str] | None = None, subgroup_noun: str = "subgroup",
                 image_size: int = 224, resize: int = 256, val_fraction: float = 0.1, test_fraction: float = 0.2,
                 max_per_class: int | None = None, seed: int = 0, where_to_get: str = "") -> None:
        self.table = table
        self.image_root = Path(image_root).expanduser()
        self.dataset_name = name
        self.path_column, self.label_column, self.subgroup_column = path_column, label_column, subgroup_column
        self.split_column = split_column
        self.split_names = {str(k): str(v) for k, v in (split_names or {s: s for s in SPLITS}).items()}
        self.configured_class_names, self.configured_group_names = class_names, group_names
        self.subgroup_noun = subgroup_noun
        self.image_size, self.resize = image_size, resize
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.max_per_class, self.seed = max_per_class, seed
        self.where_to_get = where_to_get or "check the table and image_root paths"
        self._index: dict[str, list[ImageFile]] | None = None
        self._classes: list[str] | None = None
        self._groups: list[str] | None = None

    # ------------------------------------------------------------------------------------------------ facts
    @property
    def facts(self) -> DatasetFacts:
        """The card, from the arguments (the class and subgroup names read the table when not configured): a subgroup
        is an attribute given with the data that means the same thing in every class, read for u_t by the learned
        oracle."""
        groups = tuple(self.group_names)
        return DatasetFacts(name=self.dataset_name, class_names=tuple(self.class_names), image_shape=self.image_shape,
                            classifier_view=self.classifier_view, group_names=groups,
                            subgroups="given" if groups else "none", subgroup_noun=self.subgroup_noun)

    @property
    def class_names(self) -> list[str]:
        """The configured names (no table read), else the table's label values (reads the table)."""
        if self._classes is None:
            if self.configured_class_names is not None:
                return _naming(set(), self.configured_class_names, "class")[1]
            self.validate()
        return list(self._classes or [])

    @property
    def group_names(self) -> list[str]:
        if self._groups is None:
            if self.configured_group_names is not None:
                return _naming(set(), self.configured_group_names, "group")[1]
            self.validate()
        return list(self._groups or [])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, int(self.image_size), int(self.image_size))

    @property
    def classifier_view(self) -> ImageView:
        return ImageView(size=int(self.image_size), resize=int(self.resize))

    def check_stack_shape(self, shape: tuple[int, int, int]) -> None:
        """Generated images are stored as RGB squares of any side; each consumer resizes and crops them."""
        if len(shape) != 3 or int(shape[0]) != 3 or int(shape[1]) != int(shape[2]) or int(shape[1]) < 1:
            raise ConfigError(f"{self.dataset_name} stores generated images as RGB squares (3, S, S), but the "
                              f"generator produces {list(shape)}: set the generator's output to a square")

    # ------------------------------------------------------------------------------------------------ reading
    def _tables(self) -> dict[str | None, Path]:
        if isinstance(self.table, Mapping):
            return {str(split): Path(path).expanduser() for split, path in self.table.items()}
        return {None: Path(str(self.table)).expanduser()}

    def _argument_problems(self) -> list[str]:
        problems = []
        if not isinstance(self.image_size, int) or self.image_size < 1:
            problems.append(f"image_size must be a positive int, got {self.image_size!r}")
        elif not isinstance(self.resize, int) or self.resize < self.image_size:
            problems.append(f"resize ({self.resize!r}) must be an int >= image_size ({self.image_size})")
        for key in ("val_fraction", "test_fraction"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or not 0 <= value < 1:
                problems.append(f"{key} must be in [0, 1), got {value!r}")
        if self.val_fraction + self.test_fraction >= 1:
            problems.append("val_fraction + test_fraction must be < 1 (train keeps the rest)")
        if isinstance(self.table, Mapping) and not set(map(str, self.table)) <= set(SPLITS):
            problems.append(f"table's keys must be among {list(SPLITS)}, got {list(self.table)}")
        if set(self.split_names.values()) - set(SPLITS):
            problems.append(f"split_names must map to {list(SPLITS)}, got {self.split_names}")
        if self.max_per_class is not None and (not isinstance(self.max_per_class, int) or self.max_per_class < 1):
            problems.append(f"max_per_class must be None or a positive int, got {self.max_per_class!r}")
        return problems

    def _rows(self) -> tuple[list[str], list[tuple[str | None, dict]]]:
        """Every problem with the table files and columns, and (split or None, row) of every row."""
        problems, rows = [], []
        for split, path in self._tables().items():
            if not path.is_file():
                problems.append(f"missing table {path}")
                continue
            table = read_table(path)
            needed = [self.path_column, self.label_column, self.subgroup_column]
            absent = [c for c in needed if table and c not in table[0]]
            if absent or not table:
                problems.append(f"{path} has no rows" if not table else
                                f"{path} lacks the columns {absent} (it has {list(table[0])}): set path_column, "
                                "label_column and subgroup_column")
                continue
            for row in table:
                if split is None and self.split_column and self.split_column in row:
                    value = row[self.split_column]
                    rows.append((self.split_names.get(value, f"?{value}"), row))
                else:
                    rows.append((split, row))
        unknown = sorted({s[1:] for s, _ in rows if s is not None and s.startswith("?")})
        if unknown:
            problems.append(f"split values {unknown[:5]} of column {self.split_column!r} are not in split_names "
                            f"{self.split_names}")
        return problems, rows

    def validate(self) -> None:
        """Read the table (no image is opened), check every column, value and file; one ConfigError lists all."""
        problems = self._argument_problems()
        table_problems, rows = self._rows()
        problems += table_problems
        if not table_problems:
            labels, label_names, label_problems = _naming({r[self.label_column] for _, r in rows},
                                                          self.configured_class_names, "class")
            groups, subgroup_names, group_problems = _naming({r[self.subgroup_column] for _, r in rows},
                                                             self.configured_group_names, "group")
            problems += label_problems + group_problems
            if not self.image_root.is_dir():
                problems.append(f"missing image root {self.image_root}")
            else:
                missing = self._missing_images([r[self.path_column] for _, r in rows])
                if missing:
                    problems.append(f"{len(missing)} of {len(rows)} images listed in the table are missing under "
                                    f"{self.image_root}, e.g. {missing[:3]}")
        if problems:
            raise problems_error(self.dataset_name, problems, self.where_to_get)
        self._classes, self._groups = label_names, subgroup_names
        by_split: dict[str | None, list[ImageFile]] = {}
        for split, row in rows:
            by_split.setdefault(split, []).append(ImageFile(str(self.image_root / row[self.path_column]),
                                                            labels[row[self.label_column]],
                                                            groups[row[self.subgroup_column]]))
        self._index = by_split

    def _missing_images(self, paths: list[str]) -> list[str]:
        """The listed paths with no file, found with one directory listing per folder."""
        present: dict[Path, set[str]] = {}
        missing = []
        for relative in paths:
            full = self.image_root / relative
            if full.parent not in present:
                try:
                    present[full.parent] = set(os.listdir(full.parent))
                except OSError:
                    present[full.parent] = set()
            if full.name not in present[full.parent]:
                missing.append(relative)
        return missing

    def load(self) -> dict[str, ImageFolderSplit]:
        """Lazy {'train', 'val', 'test'} splits through the classifiers' view: the table's, or carved per cell."""
        if self._index is None:
            self.validate()
        assert self._index is not None
        generator = torch.Generator().manual_seed(int(self.seed))
        index = dict(self._index)
        if None in index:  # no split in the table: test, then val, carved from every cell
            pool = index.pop(None)
            rest, test = carve_validation(pool, float(self.test_fraction), generator)
            share = float(self.val_fraction) / (1 - float(self.test_fraction))
            index["train"], index["val"] = carve_validation(rest, share, generator)
            index["test"] = test
        if not index.get("train") or not index.get("test"):
            missing = "train" if not index.get("train") else "test"
            raise ConfigError(f"{self.dataset_name}: the table gives no {missing} "
                              "rows: add them, or leave the split out (split_column: null) to carve one")
        if "val" not in index:
            index["train"], index["val"] = carve_validation(index["train"], float(self.val_fraction), generator)
        splits = {name: subsample_cells(index[name], self.max_per_class, generator) for name in SPLITS}
        log.info("%s splits: %s", self.dataset_name, {name: len(files) for name, files in splits.items()})
        return {name: ImageFolderSplit(files, self.classifier_view) for name, files in splits.items()}
