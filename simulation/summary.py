"""TensorBoard summary whose x-axis is the generation (the paper's Figure 3 curves), rebuilt from the run state.

Rebuilding from ``state.json`` after every generation (it is tiny) means a resumed run never duplicates or loses
a point, whatever stage it crashed in. Each value is written once where it belongs: a classifier's metrics under
``<classifier>/``, the generated block's (FID, filter counts, q_t, u_t, majority gain) under ``generator/``. A
custom-scalars layout groups the curves that are read together (pooled next to per-class fairness).
"""

from __future__ import annotations

import re
import shutil

import numpy as np
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from simulation.results import (
    BLOCK_FIELDS,
    CELLS_METRICS,
    CLASS_METRICS,
    FAIRNESS_METRICS,
    METRIC_LABELS,
    SCALAR_FIELDS,
)
from simulation.run_directory import RunDirectory

#: what a classifier's row measures (the block's fields are the generator's, the same in every row)
CLASSIFIER_SCALARS = tuple(k for k in SCALAR_FIELDS if k not in BLOCK_FIELDS)
X_AXIS = "x = generation"


def _chart(tags: list[str]) -> list:
    """A multi-line chart; custom-scalars tags are regular expressions, so each tag is matched exactly."""
    return ["Multiline", [f"^{re.escape(tag)}$" for tag in tags]]


def custom_scalars_layout(classifiers: list[str], has_worst_subgroup: bool, block_keys: set[str]) -> dict:
    """Per classifier: accuracy (and worst-subgroup accuracy), then MEO, DI, MD in the three readings; then the
    generator's block curves. TensorBoard's step axis is the generation here (chart titles say so)."""
    layout: dict[str, dict[str, list]] = {}
    for name in classifiers:
        charts = {f"{name}: accuracy" + (" and worst-subgroup accuracy" if has_worst_subgroup else "")
                  + f" ({X_AXIS})": _chart([f"{name}/acc", *([f"{name}/acc_rank_1"] if has_worst_subgroup else [])])}
        for pooled, per_class, cells in zip(FAIRNESS_METRICS[1:], CLASS_METRICS, CELLS_METRICS):
            charts[f"{name}: {METRIC_LABELS[pooled]} pooled, per class and over cells ({X_AXIS})"] = _chart(
                [f"{name}/{pooled}", f"{name}/{per_class}", f"{name}/{cells}"])
        layout[f"{name} across generations"] = charts
    groups = {"FID": ("fid", "fid_kept"), "filter kept / dropped": ("filter_kept", "filter_dropped"),
              "q_t (reference classifier agrees with the requested class)": ("quality_q", "quality_q_kept"),
              "u_t (subgroup imbalance)": ("imbalance_u", "imbalance_u_kept"),
              "majority gain": ("majority_gain", "majority_gain_kept")}
    charts = {f"generator: {title} ({X_AXIS})": _chart([f"generator/{k}" for k in keys if k in block_keys])
              for title, keys in groups.items() if any(k in block_keys for k in keys)}
    if charts:
        layout["generator across generations"] = charts
    return layout


def write_generation_summary(run_dir: RunDirectory, source) -> None:
    """Rewrite ``tensorboard/summary`` from the result rows and the saved per-generation sample sheets."""
    out = run_dir.tensorboard_dir / "summary"
    if out.exists():
        shutil.rmtree(out)
    writer = SummaryWriter(str(out))
    classifiers: dict[str, None] = {}
    has_worst_subgroup = False
    block_keys: set[str] = set()
    try:
        for row in run_dir.results:
            g, name = row["generation"], row["classifier"]
            classifiers[name] = None
            for key in CLASSIFIER_SCALARS:
                if row.get(key) is not None:
                    writer.add_scalar(f"{name}/{key}", row[key], g)
            for k, value in enumerate(row.get("acc_rank") or []):
                if value is not None:
                    writer.add_scalar(f"{name}/acc_rank_{k + 1}", value, g)
                    has_worst_subgroup = True
            for kind, value in (row.get("ablation_acc") or {}).items():
                writer.add_scalar(f"{name}/ablation_acc_{kind}", value, g)
            for kind, value in (row.get("ablation_drop") or {}).items():
                writer.add_scalar(f"{name}/ablation_drop_{kind}", value, g)
        for generation, report in sorted((run_dir.state.get("blocks") or {}).items(), key=lambda kv: int(kv[0])):
            for key in BLOCK_FIELDS:
                if report.get(key) is not None:
                    writer.add_scalar(f"generator/{key}", report[key], int(generation))
                    block_keys.add(key)
            for name, filt in (report.get("filters") or {}).items():
                hist = filt.get("score_histogram") or {}
                counts, edges = hist.get("counts"), hist.get("edges")
                if counts and edges and sum(counts) > 0:
                    writer.add_histogram_raw(f"filters/{name}_scores", min=edges[0], max=edges[-1],
                                             num=sum(counts), sum=sum(c * (a + b) / 2 for c, a, b in
                                                                 zip(counts, edges[:-1], edges[1:])),
                                             sum_squares=sum(c * ((a + b) / 2) ** 2 for c, a, b in
                                                             zip(counts, edges[:-1], edges[1:])),
                                             bucket_limits=edges[1:], bucket_counts=counts,
                                             global_step=int(generation))
                per_class = zip(filt.get("kept_per_class") or [], filt.get("dropped_per_class") or [])
                table = "| class | kept | dropped |\n|---|---|---|\n" + "".join(
                    f"| {source.class_names[c] if c < len(source.class_names) else c} | {k} | {d} |\n"
                    for c, (k, d) in enumerate(per_class))
                writer.add_text(f"filters/{name}_per_class", table, int(generation))
        for generation, sheet in run_dir.sample_sheets():
            writer.add_image("samples/generated", np.asarray(Image.open(sheet).convert("RGB")), generation,
                             dataformats="HWC")
        if classifiers or block_keys:
            writer.add_custom_scalars(custom_scalars_layout(list(classifiers), has_worst_subgroup, block_keys))
    finally:
        writer.close()
