"""Run directories as the report reads them, and their grouping: runs whose resolved configs differ only in the
seed (``seed_everything``, and the data source's ``seed``, which may follow it) and ``loop.run_dir`` form one group,
whose numbers are averaged over its seeds.

Everything that can be wrong with a run directory (missing or damaged files, mixed seeds, incomparable runs) is
found here, before the report writes anything, and reported as one ``ConfigError`` that names the file.
"""

from __future__ import annotations

import copy
import glob
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import ConfigError
from common.smoke_settings import smoke_settings
from datamodules.facts import DatasetFacts
from records.run_record import RunRecord

#: keys that only tell replicates of one experiment apart; the data seed is one (a run may draw its split, subsample
#: and colours with its own seed: ``--data.source.init_args.seed`` equal to ``--seed_everything``)
IGNORED_CONFIG_KEYS = (("seed_everything",), ("loop", "run_dir"), ("data", "source", "init_args", "seed"))


@dataclass
class Run:
    """A run as the report uses it: its record (``records.run_record.RunRecord``) and what the report derives."""

    record: RunRecord

    @property
    def path(self) -> Path:
        return self.record.path

    @property
    def config(self) -> dict:
        return self.record.config

    @property
    def rows(self) -> list[dict]:
        return self.record.rows

    @property
    def blocks(self) -> dict[int, dict]:
        return self.record.blocks

    @property
    def seed(self) -> int:
        return self.record.seed

    @property
    def facts(self) -> DatasetFacts | None:
        """The dataset's card the run recorded (None for a run written before runs recorded it)."""
        return self.record.facts

    @property
    def environments(self) -> list[dict]:
        """Where and with what its stages ran (the state's ``environments``)."""
        return self.record.environments

    @property
    def dataset(self) -> str:
        return str(self.rows[0].get("dataset"))

    @property
    def generations(self) -> list[int]:
        return self.record.generations

    @property
    def planned_generations(self) -> int | None:
        return self.record.planned_generations

    @property
    def planned_classifiers(self) -> list[str]:
        return self.record.planned_classifiers

    @property
    def done_generations(self) -> list[int]:
        return self.record.done_generations

    @property
    def unfinished(self) -> bool:
        return self.planned_generations is not None and not self.record.finished

    @property
    def progress(self) -> str:
        return self.record.progress

    @property
    def data_seed(self) -> object | None:
        """``data.source.init_args.seed`` of the config (the split, subsample and colour draw), None if absent."""
        node: object = self.config
        for key in ("data", "source", "init_args"):
            node = node.get(key) if isinstance(node, dict) else None
        return node.get("seed") if isinstance(node, dict) else None

    @property
    def fid_extractors(self) -> list[str]:
        """The FID feature extractors the run's blocks record (e.g. ``classifier:lenet``, ``inception-v3``)."""
        return sorted({str(b["fid_extractor"]) for b in self.blocks.values() if b.get("fid_extractor")})


@dataclass
class Group:
    key: str
    runs: list[Run]
    name: str = ""
    differing: dict[str, str] = field(default_factory=dict)

    @property
    def dataset(self) -> str:
        return self.runs[0].dataset

    @property
    def facts(self) -> DatasetFacts | None:
        return self.runs[0].facts

    @property
    def per_class_subgroups(self) -> bool:
        """Subgroup i means a different thing in every class (the card says so): per-class metrics come first."""
        return self.facts is not None and self.facts.per_class_subgroups

    @property
    def subgroup_noun(self) -> str:
        """What the dataset calls a subgroup ("colour", "fine class", ...), "subgroup" without a recorded card."""
        return self.facts.subgroup_noun if self.facts is not None else "subgroup"

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]

    @property
    def rows(self) -> list[dict]:
        return [row for run in self.runs for row in run.rows]

    @property
    def classifiers(self) -> list[str]:
        return list(dict.fromkeys(row["classifier"] for row in self.rows))

    @property
    def generations(self) -> list[int]:
        return sorted({int(row["generation"]) for row in self.rows})

    @property
    def stem(self) -> str:
        """The group's name as a file name (figures, TensorBoard runs)."""
        return file_stem(self.name)

    @property
    def unfinished(self) -> list[Run]:
        return [run for run in self.runs if run.unfinished]

    @property
    def fid_extractors(self) -> list[str]:
        return sorted({e for run in self.runs for e in run.fid_extractors})


def file_stem(name: str) -> str:
    """A group name as a file name: anything but letters, digits and ``._=+-`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", name).strip("_") or "group"


def expand_run_dirs(patterns: Iterable[str]) -> list[Path]:
    """Expand globs (``runs/sweeps/x/*/seed_*``), keep order, drop duplicates; a pattern matching nothing errors."""
    paths: list[Path] = []
    seen: set[Path] = set()
    for pattern in patterns:
        pattern = str(pattern)
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        matches = [m for m in matches if Path(m).is_dir()] if glob.has_magic(pattern) else matches
        if not matches:
            raise ConfigError(f"run directory pattern {pattern!r} matches no directory: check the path "
                              "(quote it so the shell does not expand it, or run from the right folder)")
        for match in matches:
            resolved = Path(match).resolve()
            if resolved not in seen:
                seen.add(resolved)
                paths.append(Path(match))
    if not paths:
        raise ConfigError("no run directories given: pass one or more RUN_DIR (globs allowed)")
    return paths


def load_run(path: Path) -> Run:
    """Read one run directory (``RunRecord.open``: clear errors naming the file) and refuse a smoke run."""
    record = RunRecord.open(path)
    config_path = record.layout.config_path
    trainer = record.config.get("trainer")
    smoke = smoke_settings(trainer if isinstance(trainer, dict) else None)
    if smoke:
        raise ConfigError(f"run directory {path} is a smoke run ({', '.join(smoke)} in {config_path}): its numbers "
                          "are not those of the experiment, so the report does not aggregate it; remove it from the "
                          "report's run directories, or re-run without these settings")
    return Run(record)


def group_key(config: dict) -> str:
    """The config without the keys that only distinguish seeds of one experiment, as canonical JSON."""
    config = copy.deepcopy(config)
    for keys in IGNORED_CONFIG_KEYS:
        node = config
        for k in keys[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(keys[-1], None)
    return json.dumps(config, sort_keys=True, default=str)


def flatten_config(value, prefix: str = "") -> dict[str, str]:
    """A config as {dotted key: JSON value} (lists are one value)."""
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for k, v in value.items():
            flat.update(flatten_config(v, f"{prefix}.{k}" if prefix else str(k)))
        return flat
    return {prefix: json.dumps(value, sort_keys=True, default=str)}


def _base_name(group: Group) -> str:
    """The folder above ``seed_<n>`` when all runs share it (sweeps and default run dirs name it after the
    config and its overrides), else the dataset."""
    parents = {run.path.resolve().parent.name for run in group.runs}
    if len(parents) == 1 and all(re.fullmatch(r"seed_?\d+", run.path.resolve().name) for run in group.runs):
        return parents.pop()
    return group.dataset


def name_groups(groups: list[Group]) -> None:
    """Short readable, unique names: the shared folder name (config stem + overrides), plus differing keys."""
    flats = [flatten_config(json.loads(g.key)) for g in groups]
    keys = sorted(set().union(*flats)) if flats else []
    differing = [k for k in keys if len({f.get(k, "<unset>") for f in flats}) > 1]
    for group, flat in zip(groups, flats):
        group.differing = {k: flat.get(k, "<unset>") for k in differing}
        group.name = _base_name(group)
    names = [g.name for g in groups]
    for group in groups:
        if names.count(group.name) > 1:
            detail = ",".join(f"{k.split('.')[-1]}={v.strip(chr(34))}" for k, v in group.differing.items()
                              if len(v) <= 40)
            group.name = f"{group.name}[{detail}]" if detail else group.name
    for group in groups:  # names become file names: keep them short, the summary lists the differing keys
        if len(group.name) > 80:
            digest = hashlib.sha1(group.key.encode()).hexdigest()[:6]
            group.name = f"{_base_name(group)[:60]}-{digest}"
    seen: dict[str, int] = {}
    for group in groups:
        if group.name in seen:
            seen[group.name] += 1
            group.name = f"{group.name}#{seen[group.name]}"
        else:
            seen[group.name] = 1


def group_runs(runs: list[Run]) -> list[Group]:
    """Group runs that differ only in seed; refuse groups that would average incomparable numbers."""
    groups: dict[str, Group] = {}
    for run in runs:
        key = group_key(run.config)
        groups.setdefault(key, Group(key=key, runs=[])).runs.append(run)
    for group in groups.values():
        group.runs.sort(key=lambda r: r.seed)
        datasets = {run.dataset for run in group.runs}
        if len(datasets) > 1:
            listing = ", ".join(f"{run.path} ({run.dataset})" for run in group.runs)
            raise ConfigError(f"runs with identical configs report different datasets ({listing}): their numbers "
                              "are not comparable; report them separately")
        by_seed: dict[int, Run] = {}
        for run in group.runs:
            if run.seed in by_seed:
                first = by_seed[run.seed]
                hint = (f" (their data seeds differ, {first.data_seed} and {run.data_seed}: the report treats the data "
                        "seed as part of a replicate, so give every run its own --seed_everything)"
                        if first.data_seed != run.data_seed else "")
                raise ConfigError(f"{first.path} and {run.path} are the same experiment with the same seed "
                                  f"{run.seed}: averaging them would double-count it; pass only one of them{hint}")
            by_seed[run.seed] = run
        data_seeds = [run.data_seed for run in group.runs]
        fixed = len(set(map(str, data_seeds))) == 1
        following = all(str(run.data_seed) == str(run.seed) for run in group.runs)
        if not (fixed or following):
            listing = ", ".join(f"{run.path} (seed {run.seed}, data seed {run.data_seed})" for run in group.runs)
            raise ConfigError(f"runs of one experiment mix data-seed settings ({listing}): a group's runs share one "
                              "data seed, or each run's data seed equals its --seed_everything; report each setting "
                              "separately")
        sizes = {len(row.get("acc_rank") or []) for row in group.rows}
        if len(sizes) > 1:
            raise ConfigError(f"runs of one group report different numbers of subgroups {sorted(sizes)} "
                              f"({', '.join(str(r.path) for r in group.runs)}): they are not comparable")
    result = sorted(groups.values(), key=lambda g: (g.dataset, str(g.runs[0].path)))
    name_groups(result)
    return result
