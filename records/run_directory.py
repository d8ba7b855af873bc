"""The run directory: its folder policy (what may be resumed, overwritten or refused), its state and recovery.

Where its files live is ``records.layout``; what ``state.json`` holds is ``records.state``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shutil
from pathlib import Path

from common.distributed import is_rank_zero
from common.errors import ConfigError
from common.io import atomic_write_text
from common.logs import get_logger
from records.layout import RunLayout, last_checkpoint, requeue_checkpoints

STATE_VERSION = 2

log = get_logger()


def config_fingerprint(config_text: str) -> str:
    return hashlib.sha256(config_text.encode()).hexdigest()[:16]


class RunDirectory(RunLayout):
    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(path)
        self.state: dict = {"version": STATE_VERSION, "completed": [], "results": []}

    @staticmethod
    def resume_checkpoint(stage_dir: Path) -> str | None:
        """The newest readable checkpoint to resume a stage from: Lightning's last.ckpt or a SLURM requeue hpc_ckpt.

        A checkpoint that cannot be read (truncated by a full disk or a copy cut short) is reported with its path and
        set aside as ``<name>.corrupt`` (by rank 0), so the stage restarts from the previous good one, or from scratch.
        """
        from records.checkpoint_io import readable_checkpoint  # Lightning's checkpoint IO: not for the report

        candidates = [last_checkpoint(stage_dir), *requeue_checkpoints(stage_dir)]
        existing = sorted((p for p in candidates if p.exists()), key=lambda p: p.stat().st_mtime, reverse=True)
        for path in existing:
            if readable_checkpoint(path):
                return str(path)
            message = (f"checkpoint {path} cannot be read (truncated or damaged): set aside as {path.name}.corrupt; "
                       "the stage resumes from the previous good checkpoint, or starts over")
            log.warning(message)
            if is_rank_zero():
                path.rename(path.with_name(path.name + ".corrupt"))
        return None

    def stack_differences(self, manifest: dict) -> list[str]:
        """How the stack on disk (its manifest) differs from the stack the state records (empty when it matches).

        A push interrupted after the stack was written but before the state recorded it is not a difference: its
        block may be on disk (and may have evicted the oldest recorded blocks); the push stage records it on resume.
        """
        recorded = {b["generation"]: b for b in (self.state.get("stack") or {}).get("blocks", [])}
        on_disk = {b["generation"]: b for b in manifest.get("blocks", [])}
        pending = {g for g in on_disk if g not in recorded and not self.is_done(f"g{g}/push")}
        missing = sorted(set(recorded) - set(on_disk))
        if pending and missing == sorted(recorded)[: len(missing)]:
            missing = []  # evicted by the pending push, oldest first
        problems = [f"generation {g}'s block is missing" for g in missing]
        problems += [f"generation {g}'s block is not in the run state"
                     for g in sorted(set(on_disk) - set(recorded) - pending)]
        for g in sorted(set(recorded) & set(on_disk)):
            same = recorded[g]["count"] == on_disk[g]["count"] and all(
                recorded[g]["files"][kind]["sha256"] == on_disk[g]["files"].get(kind, {}).get("sha256")
                for kind in recorded[g]["files"])
            if not same:
                problems.append(f"generation {g}'s block differs from the one recorded (size or checksum)")
        return problems

    # -------------------------------------------------------------------------------------------- checks
    def _check_usable_folder(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"loop.run_dir {self.path} is a file, not a folder: choose another loop.run_dir")
        existing = self.path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"cannot write in {existing} (permission denied), so loop.run_dir {self.path} cannot be "
                              "created or written: choose a folder you can write to, or fix its permissions")

    def read_state(self) -> dict:
        """The state file as it is on disk, or ConfigError naming it when it cannot be read."""
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ConfigError(
                f"the run state {self.state_path} cannot be read ({error}): restore it from a backup to resume this "
                "run, or choose another loop.run_dir (its results.jsonl and checkpoints stay where they are)"
            ) from error
        if not isinstance(state, dict) or not isinstance(state.get("completed"), list):
            raise ConfigError(f"the run state {self.state_path} is not a state file of this tool: restore it from a "
                              "backup, or choose another loop.run_dir")
        return state

    def check_compatible(self, config_text: str, overwrite: bool) -> str:
        """'new', 'resume' or 'overwrite'; raises ConfigError if the folder cannot hold this run. Creates nothing.

        Only a run of this tool (a folder with its state file) is ever resumed or overwritten; any other non-empty
        folder is refused whatever the flags, since the tool never deletes what it did not create.
        """
        self._check_usable_folder()
        entries = sorted(p.name for p in self.path.iterdir()) if self.path.exists() else []
        entries = [name for name in entries if name != self.lock_path.name]
        if not entries:
            return "new"
        if not self.state_path.exists():
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise ConfigError(
                f"run directory {self.path} is not a run of this tool (it has no state.json but holds {len(entries)} "
                f"entries: {shown}); this tool only writes into an empty folder or one of its own runs and never "
                "deletes what it did not create: choose another loop.run_dir"
            )
        state = self.read_state()
        if overwrite:
            return "overwrite"
        if state.get("version") != STATE_VERSION:
            raise ConfigError(
                f"run directory {self.path} was written by another version of this tool (state version "
                f"{state.get('version')}, this one writes {STATE_VERSION}) and cannot be resumed: choose another "
                "loop.run_dir (its results.jsonl stays readable by `cli.py report`)"
            )
        if state.get("config_fingerprint") == config_fingerprint(config_text):
            return "resume"
        raise ConfigError(
            f"run directory {self.path} holds a run with a different config ({self._config_difference(config_text)}; "
            f"its config is {self.config_path}): to resume it, run with that config; to start another run, choose "
            "another loop.run_dir"
        )

    def _config_difference(self, config_text: str) -> str:
        """The first differing lines between the stored config and this one, for the refusal message."""
        try:
            stored = self.config_path.read_text().splitlines()
        except OSError:
            return "its config.yaml is missing"
        diff = [line for line in difflib.unified_diff(stored, config_text.splitlines(), lineterm="", n=0)
                if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        shown = "; ".join(line.strip() for line in diff[:4])
        return f"differences: {shown}" + (" ..." if len(diff) > 4 else "") if diff else "differences in layout only"

    # -------------------------------------------------------------------------------------------- state
    def create(self, config_text: str, mode: str, launch_id: str, dataset: dict | None = None) -> None:
        """Rank 0 only, holding the lock: make the folder (emptying a previous run for 'overwrite'), write config +
        state (with ``dataset``, the dataset's card, which the report reads), stamp this launch.

        Other ranks wait for the state to carry this ``launch_id``, so they never read a half-made or stale
        run directory (ranks started together by srun/torchrun race rank 0 otherwise).
        """
        if mode == "overwrite":
            self._remove_previous_run()
        self.path.mkdir(parents=True, exist_ok=True)
        if mode == "resume":
            self.load()
        else:
            atomic_write_text(self.config_path, config_text)
            self.state = {"version": STATE_VERSION, "config_fingerprint": config_fingerprint(config_text),
                          "completed": [], "results": []}
        self.state["launch_id"] = launch_id
        if dataset is not None:
            self.state["dataset"] = dataset
        self.save()

    def _remove_previous_run(self) -> None:
        """Delete the previous run (a folder with this tool's state file; checked by ``check_compatible``), keeping
        the lock this launch holds, and say what was removed."""
        try:
            state = json.loads(self.state_path.read_text())
            what = f"{len(state.get('completed', []))} completed stages, {len(state.get('results', []))} result rows"
        except (OSError, json.JSONDecodeError):
            what = "its state was unreadable"
        for entry in self.path.iterdir():
            if entry == self.lock_path:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        log.warning(f"loop.overwrite: removed the previous run in {self.path} ({what})")

    def load(self) -> None:
        self.state = self.read_state()

    def save(self) -> None:
        atomic_write_text(self.state_path, json.dumps(self.state, indent=1))
        lines = "".join(json.dumps(row) + "\n" for row in self.state["results"])
        atomic_write_text(self.results_path, lines)

    def note_environment(self, stage: str, environment: dict) -> None:
        """Record where and with what ``stage`` ran (saved with its ``mark_done``): ``environments`` holds each
        distinct environment once, ``stage_environment`` maps a stage to its index there."""
        environments = self.state.setdefault("environments", [])
        if environment not in environments:
            environments.append(environment)
        self.state.setdefault("stage_environment", {})[stage] = environments.index(environment)

    @property
    def last_environment(self) -> dict | None:
        """The environment of the most recently recorded one (None before any stage recorded one)."""
        environments = self.state.get("environments") or []
        return environments[-1] if environments else None

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

    @property
    def dataset_card(self) -> dict | None:
        """The card of the run's dataset as the state records it (``DatasetFacts.to_json``); None for a run
        written before runs recorded it."""
        card = self.state.get("dataset")
        return dict(card) if isinstance(card, dict) else None

    def block_report(self, generation: int) -> dict:
        """What the generation and push stages recorded about a generation's block (FID, filters, q_t, u_t)."""
        return dict((self.state.get("blocks") or {}).get(str(generation), {}))

    def with_block_report(self, generation: int, **values) -> dict:
        """The state's ``blocks`` with ``values`` added to one generation's report (to pass to ``mark_done``)."""
        blocks = dict(self.state.get("blocks") or {})
        blocks[str(generation)] = {**blocks.get(str(generation), {}), **values}
        return blocks

    # -------------------------------------------------------------------------------------------- raw shards
    def delete_raw_shards(self, generation: int) -> None:
        """Delete a generation's raw block (``gen_XX/shards/``) once its push is recorded (loop.keep_raw_shards:
        false; rank 0), and record that it is gone, so ``--loop.rebuild_stack`` can say why it cannot rebuild."""
        if not self.is_done(f"g{generation}/push"):
            return
        folder = self.shard_dir(generation)
        deleted = sorted(set(self.state.get("raw_shards_deleted", [])) | {generation})
        if deleted != self.state.get("raw_shards_deleted"):
            self.state["raw_shards_deleted"] = deleted
            self.save()  # recorded first: a crash between the two leaves a folder that is deleted again on resume
        if folder.exists():
            shutil.rmtree(folder)
            log.info(f"generation {generation}: deleted its raw shards {folder} (loop.keep_raw_shards: false)")

    def check_raw_shards_kept(self) -> None:
        """ConfigError when a generation the stack records has no raw shards to rebuild it from."""
        recorded = [block["generation"] for block in (self.state.get("stack") or {}).get("blocks", [])]
        gone = [g for g in recorded if g in self.state.get("raw_shards_deleted", [])
                or not any(self.shard_dir(g).glob("*"))]
        if gone:
            raise ConfigError(
                f"--loop.rebuild_stack cannot re-create the stack of {self.path}: the raw shards of generation(s) "
                f"{gone} (gen_XX/shards/) are gone (deleted after their push with loop.keep_raw_shards: false, or "
                "removed by hand), and the stack is rebuilt from them: restore the stack folder from a backup, or "
                "start a new run (keep loop.keep_raw_shards: true for runs whose stack you may need to rebuild)")

    def size_on_disk(self) -> int:
        """Bytes of the files below the run directory (what an overwrite frees)."""
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file() and not p.is_symlink())

    def stage_info(self, stage: str) -> dict:
        """What a completed stage recorded about itself (epochs, wall time)."""
        return dict((self.state.get("stage_info") or {}).get(stage, {}))

    def with_stage_info(self, stage: str, **values) -> dict:
        return {**(self.state.get("stage_info") or {}), stage: values}
