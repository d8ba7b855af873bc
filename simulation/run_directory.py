"""The run directory: resolved config, atomic state file, results, stage folders.

Layout::

    <run_dir>/config.yaml          resolved config of the run (a different config is refused)
    <run_dir>/state.json           completed stages and result rows (atomic, rank 0)
    <run_dir>/results.jsonl        one row per (generation, classifier, seed), rewritten from the state
    <run_dir>/stack/               the FIFO stack of synthetic blocks
    <run_dir>/gen_XX/...           per-generation artefacts: generator/, shards/, classifiers/<name>/
    <run_dir>/tensorboard/         per-stage Lightning logs and the across-generations summary
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from common.errors import ConfigError

STATE_VERSION = 1


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def config_fingerprint(config_text: str) -> str:
    return hashlib.sha256(config_text.encode()).hexdigest()[:16]


class RunDirectory:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.state_path = self.path / "state.json"
        self.config_path = self.path / "config.yaml"
        self.results_path = self.path / "results.jsonl"
        self.state: dict = {"version": STATE_VERSION, "completed": [], "results": []}

    # -------------------------------------------------------------------------------------------- checks
    def check_compatible(self, config_text: str, overwrite: bool) -> str:
        """'new', 'resume' or 'overwrite'; raises ConfigError if the folder holds another run. Creates nothing."""
        if not self.path.exists() or not any(self.path.iterdir()):
            return "new"
        if not self.state_path.exists():
            if overwrite:
                return "overwrite"
            raise ConfigError(f"run directory {self.path} exists and is not a run of this tool (no state.json): "
                              "choose another loop.run_dir, or pass --loop.overwrite true to replace it")
        state = json.loads(self.state_path.read_text())
        if state.get("config_fingerprint") == config_fingerprint(config_text):
            return "overwrite" if overwrite else "resume"
        if overwrite:
            return "overwrite"
        raise ConfigError(
            f"run directory {self.path} holds a run with a different config (see {self.config_path}). "
            "To resume it, run the command with that config; to start fresh, pick another --loop.run_dir "
            "or pass --loop.overwrite true (deletes the old run)"
        )

    # -------------------------------------------------------------------------------------------- state
    def create(self, config_text: str, mode: str, launch_id: str) -> None:
        """Rank 0 only: make the folder (wiping it for 'overwrite'), write config + state, stamp this launch.

        Other ranks wait for the state to carry this ``launch_id``, so they never read a half-made or stale
        run directory (ranks started together by srun/torchrun race rank 0 otherwise).
        """
        if mode == "overwrite" and self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        if mode == "resume":
            self.load()
        else:
            atomic_write_text(self.config_path, config_text)
            self.state = {"version": STATE_VERSION, "config_fingerprint": config_fingerprint(config_text),
                          "completed": [], "results": []}
        self.state["launch_id"] = launch_id
        self.save()

    def load(self) -> None:
        self.state = json.loads(self.state_path.read_text())

    def save(self) -> None:
        atomic_write_text(self.state_path, json.dumps(self.state, indent=1))
        lines = "".join(json.dumps(row) + "\n" for row in self.state["results"])
        atomic_write_text(self.results_path, lines)

    def is_done(self, stage: str) -> bool:
        return stage in self.state["completed"]

    def mark_done(self, stage: str, row: dict | None = None, **extra) -> None:
        """Record a completed stage (and its result row) atomically. Rank 0 only."""
        if row is not None:
            self.state["results"].append(row)
        self.state.update(extra)
        if stage not in self.state["completed"]:
            self.state["completed"].append(stage)
        self.save()

    @property
    def results(self) -> list[dict]:
        return list(self.state["results"])

    def stage_dir(self, generation: int, *parts: str) -> Path:
        return self.path.joinpath(f"gen_{generation:02d}", *parts)
