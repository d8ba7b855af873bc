"""TensorBoard summary whose x-axis is the generation (the paper's Figure 3 curves), rebuilt from the run state.

Rebuilding from ``state.json`` after every generation (it is tiny) means a resumed run never duplicates or loses
a point, whatever stage it crashed in.
"""

from __future__ import annotations

import shutil

import numpy as np
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from simulation.results import SCALAR_FIELDS
from simulation.run_directory import RunDirectory


def write_generation_summary(run_dir: RunDirectory, source) -> None:
    """Rewrite ``tensorboard/summary`` from the result rows and the saved per-generation sample sheets."""
    out = run_dir.tensorboard_dir / "summary"
    if out.exists():
        shutil.rmtree(out)
    writer = SummaryWriter(str(out))
    try:
        for row in run_dir.results:
            g, name = row["generation"], row["classifier"]
            for key in SCALAR_FIELDS:
                if row.get(key) is not None:
                    writer.add_scalar(f"{name}/{key}", row[key], g)
            for k, value in enumerate(row.get("acc_rank") or []):
                if value is not None:
                    writer.add_scalar(f"{name}/acc_rank_{k + 1}", value, g)
            for kind, value in (row.get("ablation_acc") or {}).items():
                writer.add_scalar(f"{name}/ablation_acc_{kind}", value, g)
            for kind, value in (row.get("ablation_drop") or {}).items():
                writer.add_scalar(f"{name}/ablation_drop_{kind}", value, g)
        for generation, report in sorted((run_dir.state.get("blocks") or {}).items(), key=lambda kv: int(kv[0])):
            for key in ("fid", "fid_kept", "filter_kept", "filter_dropped"):
                if report.get(key) is not None:
                    writer.add_scalar(f"generator/{key}", report[key], int(generation))
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
    finally:
        writer.close()
