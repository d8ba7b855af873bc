"""What ``state.json`` holds, and the only code that reads or writes it.

The state is what a resume trusts: the stages completed (``StageKey``s), the result rows, each generation's block
report, each stage's info and environment, the stack the push stages recorded, the loggers' run ids and the summary's
bookkeeping. A file written by an older version is brought up to this one by ``STATE_MIGRATIONS``, one step a
version, when it is read; a file this version cannot read is one ``StateError`` that names it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from common.errors import ConfigError
from common.io import atomic_write_text
from datamodules.regime_migration import identity_text

#: the version this code writes
STATE_VERSION = 2
#: version k -> the step that turns a version-k state (its JSON object) into a version-(k + 1) one. Version 2 is
#: the first this package reads; a step is added here, never in a reader, when the format changes.
STATE_MIGRATIONS: dict[int, Callable[[dict], dict]] = {}


class StateError(ConfigError):
    """A state file that cannot be read as one of this tool's run states."""


def config_fingerprint(config_text: str) -> str:
    """The run's identity: a hash of its config, the data regime written in the layout the first runs recorded
    (``identity_text``), so that a run of the previous release resumes under the same identity."""
    return hashlib.sha256(identity_text(config_text).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------ stage keys
#: the steps of a generation, in the order the loop runs them
GENERATION_STEPS = ("oracle", "generator", "generate", "push")
#: the steps run once per classifier of a generation
CLASSIFIER_STEPS = ("classifier", "evaluate")
#: a run made in one piece (the analytic sandbox), recorded as one stage
WHOLE_RUN = "sandbox"
_KEY = re.compile(r"g(\d+)/([a-z]+)(?:/(.+))?")


@dataclass(frozen=True)
class StageKey:
    """One stage of a run as the state records it; ``str()`` is its one spelling: ``g1/push``,
    ``g2/classifier/<name>``, ``g0/oracle``, ``sandbox``."""

    step: str
    generation: int | None = None
    classifier: str | None = None

    def __post_init__(self) -> None:
        if self.step == WHOLE_RUN:
            ok = self.generation is None and self.classifier is None
        elif self.step in GENERATION_STEPS:
            ok = self.generation is not None and self.classifier is None
        else:
            ok = self.step in CLASSIFIER_STEPS and self.generation is not None and bool(self.classifier)
        if not ok:
            raise ValueError(f"not a stage of a run: step {self.step!r}, generation {self.generation}, "
                             f"classifier {self.classifier!r}")

    def __str__(self) -> str:
        if self.generation is None:
            return self.step
        return f"g{self.generation}/{self.step}" + (f"/{self.classifier}" if self.classifier else "")

    @classmethod
    def parse(cls, text: str) -> StageKey:
        """The key ``str()`` spells as ``text``; ValueError for anything else."""
        if text == WHOLE_RUN:
            return cls(WHOLE_RUN)
        match = _KEY.fullmatch(text)
        try:
            if match is None:
                raise ValueError("not g<generation>/<step>[/<classifier>]")
            return cls(match[2], int(match[1]), match[3])
        except ValueError as error:
            raise ValueError(f"{text!r} is not a stage key ({error})") from None

    @classmethod
    def oracle(cls) -> StageKey:
        return cls("oracle", 0)

    @classmethod
    def generator(cls, generation: int) -> StageKey:
        return cls("generator", generation)

    @classmethod
    def generate(cls, generation: int) -> StageKey:
        return cls("generate", generation)

    @classmethod
    def push(cls, generation: int) -> StageKey:
        return cls("push", generation)

    @classmethod
    def train_classifier(cls, generation: int, name: str) -> StageKey:
        return cls("classifier", generation, name)

    @classmethod
    def evaluate(cls, generation: int, name: str) -> StageKey:
        return cls("evaluate", generation, name)

    @classmethod
    def whole_run(cls) -> StageKey:
        return cls(WHOLE_RUN)


# ------------------------------------------------------------------------------------------------ its parts
class BlockReport(TypedDict, total=False):
    """What the generate and push stages recorded about a generation's block (``blocks[<generation>]``)."""

    fid: float
    fid_extractor: str
    fid_kept: float | None
    quality_q: float | None
    quality_q_kept: float | None
    imbalance_u: float | None
    imbalance_u_kept: float | None
    majority_gain: float | None
    majority_gain_kept: float | None
    #: per filter: its score histogram and the kept / dropped counts per class
    filters: dict[str, dict]
    filter_input: int
    filter_kept: int
    filter_dropped: int


class StageInfo(TypedDict, total=False):
    """What a training stage recorded about itself (``stage_info[<stage key>]``)."""

    epochs: int
    steps: int
    wall_s: float
    batch_per_device: int
    batch_global: int
    world_size: int
    lr: float | None


#: where and with what a stage ran (``common.environment.collect_environment``: library and CUDA versions, GPUs,
#: host, git commit, world size, command line, weight files' SHA-256)
Environment = dict[str, object]


# ------------------------------------------------------------------------------------------------ the state
@dataclass
class RunState:
    """The contents of ``state.json``. Optional parts are None while nothing has recorded them (and are then left
    out of the file, as before this class existed)."""

    version: int = STATE_VERSION
    config_fingerprint: str | None = None
    #: the completed stages, in the order they completed (``str(StageKey)``)
    completed: list[str] = field(default_factory=list)
    #: one row per evaluated (generation, classifier), as ``records.results.ResultRow.to_json`` wrote it
    results: list[dict] = field(default_factory=list)
    #: the launch that last prepared the folder (other ranks wait for it)
    launch_id: str | None = None
    #: the dataset's card (``DatasetFacts.to_json``)
    dataset: dict | None = None
    #: what each stage recorded about itself (epochs, wall time, batch), by ``str(StageKey)``
    stage_info: dict[str, StageInfo] | None = None
    #: per generation (its number as a string): the block's FID, filters, q_t, u_t, ...
    blocks: dict[str, BlockReport] | None = None
    #: the stack's manifest as the last push recorded it
    stack: dict | None = None
    #: each distinct environment a stage ran in, and each stage's index into it
    environments: list[Environment] | None = None
    stage_environment: dict[str, int] | None = None
    #: generations whose raw shards were deleted after their push (loop.keep_raw_shards: false)
    raw_shards_deleted: list[int] | None = None
    #: the experiment trackers' run ids, by the logger's key
    tracker_runs: dict[str, str] | None = None
    #: generations the TensorBoard summary holds, and the digest of its custom-scalars layout
    summary_generations: list[int] | None = None
    summary_layout: str | None = None

    # -------------------------------------------------------------------------------------------- reading
    def is_done(self, key: StageKey) -> bool:
        return str(key) in self.completed

    def block_report(self, generation: int) -> BlockReport:
        """What the generation and push stages recorded about a generation's block (FID, filters, q_t, u_t)."""
        return BlockReport(**(self.blocks or {}).get(str(generation), {}))

    def block_reports(self) -> dict[int, BlockReport]:
        return {int(g): BlockReport(**(report or {})) for g, report in (self.blocks or {}).items()}

    def stage_record(self, key: StageKey) -> StageInfo:
        return StageInfo(**(self.stage_info or {}).get(str(key), {}))

    @property
    def stack_blocks(self) -> list[dict]:
        """The stack's blocks as the state records them, oldest first."""
        return list((self.stack or {}).get("blocks", []))

    @property
    def last_environment(self) -> Environment | None:
        return self.environments[-1] if self.environments else None

    # -------------------------------------------------------------------------------------------- file form
    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_json(cls, raw: object, path: Path) -> RunState:
        """A state from its file's JSON object (migrated to this version); StateError naming ``path`` otherwise."""
        if not isinstance(raw, dict):
            raise StateError(f"{path} is not a run state of this tool")
        raw = migrate_state(raw)
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        for name, kind in (("completed", list), ("results", list), ("blocks", dict), ("stage_info", dict),
                           ("environments", list), ("stage_environment", dict), ("dataset", dict),
                           ("raw_shards_deleted", list), ("tracker_runs", dict), ("summary_generations", list)):
            if values.get(name) is not None and not isinstance(values[name], kind):
                raise StateError(f"{path} has a malformed {name!r} entry (a {type(values[name]).__name__}, not a "
                                 f"{kind.__name__})")
        try:
            for generation, report in (values.get("blocks") or {}).items():
                int(generation), dict(report or {})
        except (TypeError, ValueError) as error:
            raise StateError(f"{path} has a malformed 'blocks' entry ({error})") from error
        if values.get("environments") is not None:
            values["environments"] = [e for e in values["environments"] if isinstance(e, dict)]
        return cls(**values)


def migrate_state(raw: dict) -> dict:
    """``raw`` brought to ``STATE_VERSION`` by ``STATE_MIGRATIONS``. A file of a version without a path to this one
    (older, or newer) is taken as it is: the report reads the parts it knows, a resume refuses it
    (``RunDirectory.check_compatible``), an overwrite replaces it."""
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        return raw
    while version < STATE_VERSION and version in STATE_MIGRATIONS:
        raw = STATE_MIGRATIONS[version](dict(raw))
        version = raw["version"] = version + 1
    return raw


def read_state(path: Path) -> RunState:
    """``state.json`` as a ``RunState``; StateError naming the file when it cannot be read or is not a state."""
    try:
        text = path.read_text()
    except UnicodeDecodeError as error:
        raise StateError(f"{path} is not a text file, so the run state cannot be read ({error.reason} at byte "
                         f"{error.start})") from error
    except OSError as error:
        raise StateError(f"{path} cannot be read ({error.strerror or error})") from error
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise StateError(f"{path} is not valid JSON, so the run state cannot be read ({error})") from error
    return RunState.from_json(raw, path)


def peek_state(path: Path) -> RunState | None:
    """The state as it is now, or None while it is missing or half-written (a rank polling rank 0's progress)."""
    try:
        return read_state(path)
    except StateError:
        return None


def write_state(path: Path, state: RunState) -> None:
    """Write ``state.json`` atomically (rank 0)."""
    atomic_write_text(path, json.dumps(state.to_json(), indent=1))

