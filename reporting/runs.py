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

import yaml

from common.errors import ConfigError
from common.smoke_settings import smoke_settings
from datamodules.facts import DatasetFacts
from records.layout import RESULTS_FILE, STATE_FILE
from records.run_directory import RunDirectory
from reporting.readings import complete_row

#: keys that only tell replicates of one experiment apart; the data seed is one (a run may draw its split, subsample
#: and colours with its own seed: ``--data.source.init_args.seed`` equal to ``--seed_everything``)
IGNORED_CONFIG_KEYS = (("seed_everything",), ("loop", "run_dir"), ("data", "source", "init_args", "seed"))
REQUIRED_ROW_KEYS = ("generation", "classifier", "dataset")


@dataclass
class Run:
    path: Path
    config: dict
    rows: list[dict]
    blocks: dict[int, dict]
    seed: int
    #: the dataset's card the run recorded (None for a run written before runs recorded it)
    facts: DatasetFacts | None = None
    environments: list[dict] = field(default_factory=list)  # state.json: where and with what its stages ran

    @property
    def dataset(self) -> str:
        return str(self.rows[0].get("dataset"))

    @property
    def generations(self) -> list[int]:
        return sorted({int(row["generation"]) for row in self.rows})

    @property
    def planned_generations(self) -> int | None:
        """``loop.generations`` of the run's config (generations 0..N are planned), None when not recorded."""
        loop = self.config.get("loop")
        value = loop.get("generations") if isinstance(loop, dict) else None
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def planned_classifiers(self) -> list[str]:
        names = [c.get("name") or c.get("arch") for c in self.config.get("classifiers") or [] if isinstance(c, dict)]
        return [str(n) for n in names if n] or list(dict.fromkeys(str(r["classifier"]) for r in self.rows))

    @property
    def done_generations(self) -> list[int]:
        """Generations with a result row for every planned classifier."""
        done = {(int(r["generation"]), str(r["classifier"])) for r in self.rows}
        return [g for g in self.generations if all((g, c) in done for c in self.planned_classifiers)]

    @property
    def unfinished(self) -> bool:
        planned = self.planned_generations
        return planned is not None and len(self.done_generations) < planned + 1

    @property
    def progress(self) -> str:
        """``3/4 generations (0-3) done`` for an unfinished run, as the summary flags it."""
        planned = self.planned_generations
        if planned is None:
            return f"{len(self.done_generations)} generations done (planned number not recorded)"
        return f"{len(self.done_generations)}/{planned + 1} generations (0-{planned}) done"

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


def _run_hint(path: Path) -> str:
    if not path.is_dir():
        return "the folder does not exist"
    nested = sorted(p.parent for p in path.glob(f"**/{RunDirectory(path).results_path.name}"))
    if nested:
        example = nested[0].relative_to(path).parts
        pattern = str(path / Path(*["*"] * len(example))) if example else str(path)
        return (f"it holds {len(nested)} run directories below it: pass them instead, e.g. '{pattern}'")
    return "the run has not finished its first classifier stage yet, or this is not a run directory"


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not a text file ({err.reason} at byte {err.start}): the file is damaged") \
            from err
    except OSError as err:
        raise ConfigError(f"{path} cannot be read ({err.strerror or err})") from err


def _read_rows(results_path: Path) -> list[dict]:
    damaged = f"the file is damaged; re-run the same `cli.py fit` command to rewrite it from {STATE_FILE}"
    rows = []
    for number, line in enumerate(_read_text(results_path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{results_path} line {number} is not valid JSON ({err}): {damaged}") from err
        if not isinstance(row, dict):
            raise ConfigError(f"{results_path} line {number} is not a result row (a JSON object): {damaged}")
        missing = [k for k in REQUIRED_ROW_KEYS if k not in row]
        if missing:
            raise ConfigError(f"{results_path} line {number} lacks {missing}: not a result file of this tool")
        for key in ("generation", "seed"):
            value = row.get(key)
            if key == "seed" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{results_path} line {number}: {key} = {value!r} is not an integer: {damaged}")
        rows.append(complete_row(row))
    if not rows:
        raise ConfigError(f"{results_path} is empty: the run has no finished classifier yet; "
                          "wait for it or leave it out of the report")
    return rows


def _read_state(state_path: Path) -> tuple[dict[int, dict], DatasetFacts | None]:
    """The per-generation block reports of state.json (FID, its extractor, q_t, u_t) and the dataset's card;
    ({}, None) without the file."""
    if not state_path.is_file():
        return {}, None
    damaged = ("the file is damaged: restore it, or move it out of the run directory to report without the "
               "generator's FID and block statistics")
    try:
        state = json.loads(_read_text(state_path))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{state_path} is not valid JSON ({err}): {damaged}") from err
    blocks = state.get("blocks") if isinstance(state, dict) else None
    if not isinstance(state, dict) or not isinstance(blocks or {}, dict):
        raise ConfigError(f"{state_path} is not a run state of this tool: {damaged}")
    try:
        blocks = {int(g): dict(b or {}) for g, b in (blocks or {}).items()}
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{state_path} has a malformed 'blocks' entry ({err}): {damaged}") from err
    card = state.get("dataset")
    try:
        facts = DatasetFacts.from_json(card) if isinstance(card, dict) else None
    except (TypeError, ValueError, KeyError) as err:
        raise ConfigError(f"{state_path} has a malformed 'dataset' card ({err}): {damaged}") from err
    return blocks, facts


def _read_environments(state_path: Path) -> list[dict]:
    """The environments state.json records (read after ``_read_blocks`` checked the file); [] for older runs."""
    if not state_path.is_file():
        return []
    environments = json.loads(_read_text(state_path)).get("environments")
    return [e for e in environments if isinstance(e, dict)] if isinstance(environments, list) else []


def load_run(path: Path) -> Run:
    """Read one run directory (results.jsonl, config.yaml, state.json blocks) with clear errors."""
    run_dir = RunDirectory(path)
    results_path, config_path = run_dir.results_path, run_dir.config_path
    if not results_path.is_file():
        raise ConfigError(f"run directory {path} has no {RESULTS_FILE} ({_run_hint(path)})")
    if not config_path.is_file():
        raise ConfigError(f"run directory {path} has no config.yaml: it was not written by `cli.py fit`; "
                          "remove it from the report's run directories")
    rows = _read_rows(results_path)
    try:
        config = yaml.safe_load(_read_text(config_path)) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{config_path} is not valid YAML ({' '.join(str(err).split())})") from err
    if not isinstance(config, dict):
        raise ConfigError(f"{config_path} is not a config of this tool (a YAML mapping): the file is damaged")
    smoke = smoke_settings(config.get("trainer") if isinstance(config.get("trainer"), dict) else None)
    if smoke:
        raise ConfigError(f"run directory {path} is a smoke run ({', '.join(smoke)} in {config_path}): its numbers "
                          "are not those of the experiment, so the report does not aggregate it; remove it from the "
                          "report's run directories, or re-run without these settings")
    blocks, facts = _read_state(run_dir.state_path)
    seeds = sorted({int(row["seed"]) for row in rows if row.get("seed") is not None})
    if len(seeds) > 1:
        raise ConfigError(f"{results_path} mixes seeds {seeds}: one run directory must hold one seed; "
                          "give every seed its own --loop.run_dir")
    seed = seeds[0] if seeds else int(config.get("seed_everything") or 0)
    datasets = {str(row["dataset"]) for row in rows}
    if len(datasets) > 1:
        raise ConfigError(f"{results_path} mixes datasets {sorted(datasets)}: one run directory must hold one run")
    return Run(path=path, config=config, rows=rows, blocks=blocks, seed=seed, facts=facts,
               environments=_read_environments(run_dir.state_path))


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
