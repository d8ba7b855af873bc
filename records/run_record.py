"""A run as whoever reads it afterwards sees it (the report, the sweep): its config, its result rows (migrated to
today's fields) and its state, read and validated once by ``RunRecord.open``.

Everything that can be wrong with the folder (missing or damaged files, mixed seeds or datasets) is one
``ConfigError`` that names the file and says what to do. "Is this run finished?" and "what are its classifiers
called?" are answered here and nowhere else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from common.errors import ConfigError
from datamodules.facts import DatasetFacts
from datamodules.regime_migration import to_current_layout
from records.layout import RunLayout
from records.results import REQUIRED_ROW_KEYS, classifier_name, migrate_row
from records.state import RunState, StateError, read_state


@dataclass(frozen=True)
class RunRecord:
    path: Path
    config: dict
    rows: list[dict]
    #: the state's parts the readers use; an empty state for a folder without state.json (rows and config only)
    state: RunState
    #: the dataset's card the run recorded (None for a run written before runs recorded it)
    facts: DatasetFacts | None

    # -------------------------------------------------------------------------------------------- reading
    @classmethod
    def open(cls, path: str | Path) -> RunRecord:
        """Read and check a run directory; ConfigError naming the file for anything that is not a run's record."""
        layout = RunLayout(path)
        path = layout.path
        results_path, config_path = layout.results_path, layout.config_path
        if not results_path.is_file():
            raise ConfigError(f"run directory {path} has no {results_path.name} ({_run_hint(layout)})")
        if not config_path.is_file():
            raise ConfigError(f"run directory {path} has no {config_path.name}: it was not written by `cli.py fit`; "
                              "remove it from the report's run directories")
        rows = _read_rows(results_path, layout)
        try:
            config = yaml.safe_load(_read_text(config_path)) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{config_path} is not valid YAML ({' '.join(str(err).split())})") from err
        if not isinstance(config, dict):
            raise ConfigError(f"{config_path} is not a config of this tool (a YAML mapping): the file is damaged")
        config = to_current_layout(config)  # a run of the previous release groups with the same experiment's new runs
        state, facts = _read_state(layout)
        seeds = sorted({int(row["seed"]) for row in rows if row.get("seed") is not None})
        if len(seeds) > 1:
            raise ConfigError(f"{results_path} mixes seeds {seeds}: one run directory must hold one seed; "
                              "give every seed its own --loop.run_dir")
        datasets = {str(row["dataset"]) for row in rows}
        if len(datasets) > 1:
            raise ConfigError(f"{results_path} mixes datasets {sorted(datasets)}: one run directory must hold one "
                              "run")
        return cls(path=path, config=config, rows=rows, state=state, facts=facts)

    # -------------------------------------------------------------------------------------------- what it holds
    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.path)

    @property
    def seed(self) -> int:
        """The rows' seed, else the config's ``seed_everything``."""
        seeds = [int(row["seed"]) for row in self.rows if row.get("seed") is not None]
        return seeds[0] if seeds else int(self.config.get("seed_everything") or 0)

    @property
    def blocks(self) -> dict[int, dict]:
        """The per-generation block reports (FID, its extractor, q_t, u_t)."""
        return self.state.block_reports()

    @property
    def environments(self) -> list[dict]:
        return list(self.state.environments or [])

    @property
    def planned_generations(self) -> int | None:
        """``loop.generations`` of the run's config (generations 0..N are planned), None when not recorded."""
        loop = self.config.get("loop")
        value = loop.get("generations") if isinstance(loop, dict) else None
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def planned_classifiers(self) -> list[str]:
        """The classifiers the config asks for, by the name their rows carry; the rows' own without a config list."""
        entries = [c for c in self.config.get("classifiers") or [] if isinstance(c, dict)]
        names = [classifier_name(c.get("name"), c.get("arch")) for c in entries]
        return [str(n) for n in names if n] or list(dict.fromkeys(str(r["classifier"]) for r in self.rows))

    @property
    def generations(self) -> list[int]:
        return sorted({int(row["generation"]) for row in self.rows})

    @property
    def done_generations(self) -> list[int]:
        """Generations with a result row for every planned classifier."""
        done = {(int(r["generation"]), str(r["classifier"])) for r in self.rows}
        return [g for g in self.generations if all((g, c) in done for c in self.planned_classifiers)]

    @property
    def finished(self) -> bool:
        """Every planned generation (0..N) has a row for every planned classifier."""
        planned = self.planned_generations
        return planned is not None and set(range(planned + 1)) <= set(self.done_generations)

    @property
    def progress(self) -> str:
        """``3/4 generations (0-3) done``, as the report flags an unfinished run."""
        planned = self.planned_generations
        if planned is None:
            return f"{len(self.done_generations)} generations done (planned number not recorded)"
        return f"{len(self.done_generations)}/{planned + 1} generations (0-{planned}) done"


def is_finished(path: str | Path) -> bool:
    """Whether the folder holds a finished run (False for one that cannot be read as a run: not started, damaged)."""
    try:
        return RunRecord.open(path).finished
    except ConfigError:
        return False


# ------------------------------------------------------------------------------------------------ the files
def _run_hint(layout: RunLayout) -> str:
    path = layout.path
    if not path.is_dir():
        return "the folder does not exist"
    nested = sorted(p.parent for p in path.glob(f"**/{layout.results_path.name}"))
    if nested:
        example = nested[0].relative_to(path).parts
        pattern = str(path / Path(*["*"] * len(example))) if example else str(path)
        return f"it holds {len(nested)} run directories below it: pass them instead, e.g. '{pattern}'"
    return "the run has not finished its first classifier stage yet, or this is not a run directory"


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not a text file ({err.reason} at byte {err.start}): the file is damaged") \
            from err
    except OSError as err:
        raise ConfigError(f"{path} cannot be read ({err.strerror or err})") from err


def _read_rows(results_path: Path, layout: RunLayout) -> list[dict]:
    damaged = (f"the file is damaged; re-run the same `cli.py fit` command to rewrite it from "
               f"{layout.state_path.name}")
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
        rows.append(migrate_row(row))
    if not rows:
        raise ConfigError(f"{results_path} is empty: the run has no finished classifier yet; "
                          "wait for it or leave it out of the report")
    return rows


def _read_state(layout: RunLayout) -> tuple[RunState, DatasetFacts | None]:
    """The run's state and the dataset's card; an empty state and None without the file."""
    path = layout.state_path
    if not path.is_file():
        return RunState(), None
    damaged = ("the file is damaged: restore it, or move it out of the run directory to report without the "
               "generator's FID and block statistics")
    try:
        state = read_state(path)
    except StateError as err:
        raise ConfigError(f"{err}: {damaged}") from err
    try:
        facts = DatasetFacts.from_json(state.dataset) if state.dataset is not None else None
    except (TypeError, ValueError, KeyError) as err:
        raise ConfigError(f"{path} has a malformed 'dataset' card ({err}): {damaged}") from err
    return state, facts
