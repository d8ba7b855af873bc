"""TensorBoard summary whose x-axis is the generation (the paper's Figure 3 curves), written from the run state.

After every generation the generations not yet written are appended from ``state.json`` (which records those
written), so a resumed run never duplicates or loses a point, whatever stage it crashed in, and an open TensorBoard
only ever sees points added. Each value is written once where it belongs: a classifier's metrics under
``<classifier>/``, the generated block's (FID, filter counts, q_t, u_t, majority gain) under ``generator/``. A
custom-scalars layout groups the curves that are read together (pooled next to per-class fairness).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from records.results import ACCURACY, BLOCK, DATA, FAIRNESS, PRINTED, fairness_families, label, metric_names
from records.run_directory import RunDirectory
from simulation.loggers import StageLoggers

X_AXIS = "x = generation"
EVENT_FILE_PREFIX = "events.out.tfevents."
#: the longest wait for a later second before opening the next event file (a clock set back waits no longer)
MAX_WAIT_FOR_NEXT_SECOND_S = 2.0


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
        for pooled, per_class, cells in fairness_families():
            charts[f"{name}: {label(pooled)} pooled, per class and over cells ({X_AXIS})"] = _chart(
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


def generation_scalars(run_dir: RunDirectory, generation: int) -> dict[str, float]:
    """Every scalar of one generation as the summary names it: ``<classifier>/<metric>`` and ``generator/<field>``."""
    scalars: dict[str, float] = {}
    for row in run_dir.results:
        if int(row["generation"]) != generation:
            continue
        name = row["classifier"]
        for key in metric_names(ACCURACY, FAIRNESS, PRINTED, DATA):  # a classifier's (the block's: the generator's)
            if row.get(key) is not None:
                scalars[f"{name}/{key}"] = float(row[key])
        for k, value in enumerate(row.get("acc_rank") or []):
            if value is not None:
                scalars[f"{name}/acc_rank_{k + 1}"] = float(value)
        for kind, value in (row.get("ablation_acc") or {}).items():
            scalars[f"{name}/ablation_acc_{kind}"] = float(value)
        for kind, value in (row.get("ablation_drop") or {}).items():
            scalars[f"{name}/ablation_drop_{kind}"] = float(value)
    report = run_dir.block_report(generation)
    for key in metric_names(BLOCK):
        if report.get(key) is not None:
            scalars[f"generator/{key}"] = float(report[key])
    return scalars


def _write_filters(writer: SummaryWriter, report: dict, generation: int, source) -> None:
    for name, filt in (report.get("filters") or {}).items():
        hist = filt.get("score_histogram") or {}
        counts, edges = hist.get("counts"), hist.get("edges")
        if counts and edges and sum(counts) > 0:
            mids = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
            writer.add_histogram_raw(f"filters/{name}_scores", min=edges[0], max=edges[-1], num=sum(counts),
                                     sum=sum(c * m for c, m in zip(counts, mids)),
                                     sum_squares=sum(c * m ** 2 for c, m in zip(counts, mids)),
                                     bucket_limits=edges[1:], bucket_counts=counts, global_step=generation)
        per_class = zip(filt.get("kept_per_class") or [], filt.get("dropped_per_class") or [])
        table = "| class | kept | dropped |\n|---|---|---|\n" + "".join(
            f"| {source.class_names[c] if c < len(source.class_names) else c} | {k} | {d} |\n"
            for c, (k, d) in enumerate(per_class))
        writer.add_text(f"filters/{name}_per_class", table, generation)


def open_after_earlier_files(out: Path) -> SummaryWriter:
    """A writer whose event file TensorBoard reads after every file already in ``out``.

    TensorBoard reads a folder's event files in name order, and a name is ``events.out.tfevents.<second>.<host>.
    <pid>.<n>``, ``n`` counting the writers this process opened: two files opened in the same second sort by ``n``
    as text (``.10`` before ``.6``), and a later generation's points would come first. Waiting, when needed, for a
    second later than the newest file's keeps name order equal to write order. Only runs whose generations take
    under a second ever wait (a tiny test run); a real generation takes minutes.
    """
    newest = None
    for path in out.glob(f"{EVENT_FILE_PREFIX}*"):
        with contextlib.suppress(ValueError, IndexError):
            second = int(path.name[len(EVENT_FILE_PREFIX):].split(".")[0])
            newest = second if newest is None else max(newest, second)
    deadline = time.monotonic() + MAX_WAIT_FOR_NEXT_SECOND_S
    while newest is not None and int(time.time()) <= newest and time.monotonic() < deadline:
        time.sleep(0.02)
    return SummaryWriter(str(out))


def write_generation_summary(run_dir: RunDirectory, source, through: int,
                             loggers: StageLoggers | None = None) -> None:
    """Append to ``tensorboard/summary`` (and the chosen loggers' run-level series) the generations up to ``through``
    it does not hold.

    Called after generation ``through``'s stages, so every generation up to it is complete; a later one may hold a
    block report already (a resumed run that crashed after its generate stage), and is left for its own turn.
    ``state.json`` records the generations written (``summary_generations``), so a resume writes only what is
    missing and an open TensorBoard never sees its curves removed or doubled.
    """
    out = run_dir.summary_tensorboard_dir
    if run_dir.summary_generations is None and out.exists():
        shutil.rmtree(out)  # written by an earlier version that rebuilt it: rebuilt once more, then appended to
    done = set(run_dir.summary_generations or [])
    blocks = run_dir.state.block_reports()
    present = {int(r["generation"]) for r in run_dir.results} | set(blocks)
    pending = sorted(g for g in present - done if g <= through)
    if not pending:
        return
    sheets = dict(run_dir.sample_sheets())
    writer = open_after_earlier_files(out)
    try:
        series = {}
        for generation in pending:
            series[generation] = scalars = generation_scalars(run_dir, generation)
            for tag, value in scalars.items():
                writer.add_scalar(tag, value, generation)
            _write_filters(writer, run_dir.block_report(generation), generation, source)
            if generation in sheets:
                writer.add_image("samples/generated", np.asarray(Image.open(sheets[generation]).convert("RGB")),
                                 generation, dataformats="HWC")
        if loggers is not None:  # the run's own tracker runs, their step the generation
            loggers.log_summary(series)
        classifiers = list(dict.fromkeys(r["classifier"] for r in run_dir.results))
        has_worst_subgroup = any(v is not None for r in run_dir.results for v in r.get("acc_rank") or [])
        block_keys = {k for report in blocks.values() for k in metric_names(BLOCK) if report.get(k) is not None}
        layout = custom_scalars_layout(classifiers, has_worst_subgroup, block_keys) if classifiers or block_keys \
            else None
        digest = hashlib.sha256(json.dumps(layout, sort_keys=True).encode()).hexdigest()[:16]
        written = None
        if layout and run_dir.summary_layout != digest:  # written again only when it changes
            writer.add_custom_scalars(layout)
            written = digest
    finally:
        writer.close()
    run_dir.record_summary(sorted(done | set(pending)), written)
