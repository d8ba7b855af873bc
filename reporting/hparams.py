"""A TensorBoard HParams view of the runs a report reads, so that the runs of a sweep can be compared in
TensorBoard's HPARAMS tab (``tensorboard --logdir <report>/tensorboard``).

One TensorBoard run per run directory (``<group>/seed_<s>``) holds its hyperparameters (p, r, stack generations,
seed, ...) and, per classifier, the final and the mean over generations of every metric; the experiment summary
(which hyperparameters and metrics exist) sits once at the top of the folder, as the plugin expects.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from common.errors import ConfigError
from records.results import ACCURACY, FAIRNESS, PRINTED, metric_names
from reporting.runs import Group, Run
from reporting.setup import classifier_settings, filter_chain, realised_shares

EVENT_FILE_PREFIX = "events.out.tfevents."
#: row keys outside the metric table -> their name in the view (acc_rank_1, the lowest ranked subgroup accuracy, is
#: the worst subgroup's)
EXTRA_HPARAM_METRICS = {"acc_rank_1": "worst_subgroup_acc"}


def hparam_metrics() -> dict[str, str]:
    """Row key -> metric name in the view: accuracy and every fairness metric of the table, as printed too."""
    return {**{k: k for k in metric_names(ACCURACY, FAIRNESS, PRINTED)}, **EXTRA_HPARAM_METRICS}


def check_tensorboard_dir(path: Path) -> None:
    """The folder is replaced on every report: refuse (before any work) one that holds anything but event files."""
    if not path.exists():
        return
    foreign = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(EVENT_FILE_PREFIX)] \
        if path.is_dir() else [path]
    if foreign:
        raise ConfigError(f"{path} holds files that are not TensorBoard event files (e.g. {foreign[0]}): the report "
                          "rewrites that folder; choose another --out")


def run_hparams(run: Run, group: Group) -> dict[str, float | str]:
    """The hyperparameters that tell runs of a sweep apart; numbers as floats (one type per hyperparameter)."""
    config = run.config
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    loop = config.get("loop") if isinstance(config.get("loop"), dict) else {}
    regime = data.get("regime") if isinstance(data.get("regime"), dict) else {}
    values: dict[str, object] = {"group": group.name, "dataset": run.dataset, "seed": run.seed,
                                 "p": regime.get("synthetic_share"), "policy": regime.get("policy"),
                                 "window": regime.get("window"),
                                 "generations": loop.get("generations"),
                                 "samples_per_generation": loop.get("samples_per_generation")}
    ratios = {}
    for spec in config.get("filters") or []:
        if isinstance(spec, dict) and isinstance(spec.get("init_args"), dict) and "ratio" in spec["init_args"]:
            ratios[str(spec.get("class_path", "filter")).rsplit(".", 1)[-1]] = spec["init_args"]["ratio"]
    if len(ratios) <= 1:
        values["r"] = next(iter(ratios.values()), 0.0)
    else:
        values.update({f"r_{name}": ratio for name, ratio in ratios.items()})
    values["filters"] = filter_chain(run)
    for setting in classifier_settings(run):
        for key in ("lr", "batch_size", "max_epochs"):
            values[f"{setting['name']}/{key}"] = setting[key]
    return {k: (v if isinstance(v, str) else float(v)) for k, v in values.items()
            if isinstance(v, str) or (isinstance(v, (int, float)) and not isinstance(v, bool))}


def run_metrics(run: Run) -> dict[str, float]:
    """Per classifier, ``<classifier>/final_<metric>`` (last generation with a value) and ``.../mean_<metric>``
    (mean over its generations); the generator's FID likewise."""
    metrics: dict[str, float] = {}
    rows = sorted(run.rows, key=lambda r: int(r["generation"]))
    for classifier in dict.fromkeys(r["classifier"] for r in rows):
        own = [r for r in rows if r["classifier"] == classifier]
        for key, name in hparam_metrics().items():
            values = [_value(r, key) for r in own]
            values = [v for v in values if v is not None]
            if values:
                metrics[f"{classifier}/final_{name}"] = values[-1]
                metrics[f"{classifier}/mean_{name}"] = float(np.mean(values))
    for generation, share in realised_shares(run).items():
        metrics[f"data/realised_synthetic_share_gen{generation:02d}"] = share
    fids = [float(b["fid"]) for _, b in sorted(run.blocks.items()) if b.get("fid") is not None]
    if fids:
        metrics["generator/final_fid"], metrics["generator/mean_fid"] = fids[-1], float(np.mean(fids))
    return metrics


def _value(row: dict, key: str) -> float | None:
    if key == "acc_rank_1":
        ranks = row.get("acc_rank") or []
        value = ranks[0] if ranks else None
    else:
        value = row.get(key)
    return float(value) if isinstance(value, (int, float)) and np.isfinite(value) else None


def write_hparams(groups: list[Group], out: Path) -> list[Path]:
    """Replace ``out`` with the HParams view of every run; returns the TensorBoard run folders written."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    if out.exists():
        shutil.rmtree(out)
    per_run = [(group, run, run_hparams(run, group), run_metrics(run)) for group in groups for run in group.runs]
    all_hparams: dict[str, float | str] = {}
    domains: dict[str, set] = {}
    all_metrics: dict[str, float] = {}
    for _, _, hp, metrics in per_run:
        for key, value in hp.items():
            all_hparams.setdefault(key, value)
            domains.setdefault(key, set()).add(value)
        all_metrics.update(dict.fromkeys(metrics, 0.0))
    discrete = {k: sorted(v) for k, v in domains.items() if len({type(x) for x in v}) == 1}
    experiment, _, _ = hparams({k: all_hparams[k] for k in sorted(all_hparams)}, all_metrics, discrete)
    root = SummaryWriter(str(out))
    root.file_writer.add_summary(experiment)
    root.close()
    written = []
    for group, run, hp, metrics in per_run:
        folder = out / group.stem / f"seed_{run.seed}"
        writer = SummaryWriter(str(folder))
        _, start, end = hparams(hp, metrics)
        writer.file_writer.add_summary(start)
        writer.file_writer.add_summary(end)
        for tag, value in metrics.items():
            writer.add_scalar(tag, value, 0)
        writer.close()
        written.append(folder)
    return written
