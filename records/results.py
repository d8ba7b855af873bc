"""The result row: one per (generation, classifier, seed), the single list of fields that the loop writes, the
TensorBoard summary plots and the report aggregates."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

#: pooled fairness metrics (subgroups pooled over classes) and accuracy
FAIRNESS_METRICS = ("acc", "meo", "di", "md")
#: the same metrics within each class over its subgroups, averaged over classes
CLASS_METRICS = ("meo_class", "di_class", "md_class")
#: the same metrics over every (class, subgroup) cell as a group (the cited CIFAR-20/100 code's convention)
CELLS_METRICS = ("meo_cells", "di_cells", "md_cells")
#: eqs. 2 and 3 as printed (ordered pairs over C(G,2)), beside the bounded MEO and DI, for each reading
PRINTED_METRICS = ("meo_eq2", "di_eq3", "meo_eq2_class", "di_eq3_class", "meo_eq2_cells", "di_eq3_cells")
#: the three readings of "the groups" and their metrics, in the order the report shows them by default
READING_METRICS = {"pooled": ("meo", "di", "md", "meo_eq2", "di_eq3"),
                   "per_class": ("meo_class", "di_class", "md_class", "meo_eq2_class", "di_eq3_class"),
                   "cells": ("meo_cells", "di_cells", "md_cells", "meo_eq2_cells", "di_eq3_cells")}
#: how each reading is named in titles
READING_TITLES = {"pooled": "pooled: subgroup index pooled over classes",
                  "per_class": "per class: within each class, averaged over classes",
                  "cells": "cells: every (class, subgroup) cell a group"}
#: how the epoch's data were composed
DATA_FIELDS = ("target_share", "synthetic_share", "synthetic_reuse", "n_real", "n_synthetic", "stack_size")
#: the generation's block (the same in every row of the generation; null at generation 0)
BLOCK_FIELDS = ("fid", "fid_kept", "filter_kept", "filter_dropped", "quality_q", "quality_q_kept", "imbalance_u",
                "imbalance_u_kept", "majority_gain", "majority_gain_kept")
#: every scalar of a row that is plotted against the generation
SCALAR_FIELDS = (*FAIRNESS_METRICS, *CLASS_METRICS, *CELLS_METRICS, *PRINTED_METRICS, "synthetic_share",
                 "synthetic_reuse", *BLOCK_FIELDS)
METRIC_LABELS = {"acc": "accuracy", "meo": "MEO", "di": "DI", "md": "MD", "meo_class": "MEO (per class)",
                 "di_class": "DI (per class)", "md_class": "MD (per class)", "meo_cells": "MEO (cells)",
                 "di_cells": "DI (cells)", "md_cells": "MD (cells)", "meo_eq2": "MEO eq. 2 as printed",
                 "di_eq3": "DI eq. 3 as printed", "meo_eq2_class": "MEO eq. 2 as printed (per class)",
                 "di_eq3_class": "DI eq. 3 as printed (per class)", "meo_eq2_cells": "MEO eq. 2 as printed (cells)",
                 "di_eq3_cells": "DI eq. 3 as printed (cells)", "fid": "FID", "fid_kept": "FID (kept)",
                 "synthetic_share": "synthetic share", "synthetic_reuse": "stack reuse", "quality_q": "q_t",
                 "quality_q_kept": "q_t (kept)", "imbalance_u": "u_t", "imbalance_u_kept": "u_t (kept)",
                 "majority_gain": "majority gain", "majority_gain_kept": "majority gain (kept)"}


@dataclass
class ResultRow:
    """What one classifier of one generation measured on the real test set, and what it was trained on.

    Metrics are null where they do not apply: fairness metrics without known subgroups (Hard ImageNet), block
    statistics at generation 0, ablations without object masks. Fairness metrics come in three readings (no suffix
    = pooled, ``_class``, ``_cells``; ``metrics/fairness.py``).
    """

    generation: int
    classifier: str
    arch: str
    seed: int
    dataset: str
    # the epoch's composition
    target_share: float
    synthetic_share: float
    synthetic_reuse: float
    n_real: int
    n_synthetic: int
    stack_size: int
    stack_generations: list[int]
    # the real test set
    acc: float | None
    meo: float | None = None
    di: float | None = None
    md: float | None = None
    meo_class: float | None = None
    di_class: float | None = None
    md_class: float | None = None
    meo_cells: float | None = None
    di_cells: float | None = None
    md_cells: float | None = None
    # eqs. 2 and 3 as printed (DI_eq3 is null where a zero rate meets a positive one: x/0, unbounded)
    meo_eq2: float | None = None
    di_eq3: float | None = None
    meo_eq2_class: float | None = None
    di_eq3_class: float | None = None
    meo_eq2_cells: float | None = None
    di_eq3_cells: float | None = None
    acc_rank: list[float | None] = field(default_factory=list)
    group_acc: list[list[float | None]] = field(default_factory=list)
    # the generation's block
    fid: float | None = None
    fid_kept: float | None = None
    filter_kept: int | None = None
    filter_dropped: int | None = None
    quality_q: float | None = None
    quality_q_kept: float | None = None
    imbalance_u: float | None = None
    imbalance_u_kept: float | None = None
    majority_gain: float | None = None
    majority_gain_kept: float | None = None
    # Hard ImageNet ablations
    ablation_acc: dict[str, float | None] | None = None
    ablation_drop: dict[str, float | None] | None = None
    ablation_acc_class: dict[str, list[float | None]] | None = None
    # the training stage
    epochs: int = 0
    wall_s: float = 0.0
    # accuracy of uniform guessing (1 / classes), and whether acc is within metrics/chance.py's margin of it: the
    # fairness metrics of such a classifier read as fair because it has learned nothing
    chance_acc: float | None = None
    near_chance: bool = False

    def to_json(self) -> dict:
        return asdict(self)
