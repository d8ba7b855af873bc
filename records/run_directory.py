"""The run directory: its folder policy (what may be resumed, overwritten or refused), its state and recovery.

Where its files live is ``records.layout``; what ``state.json`` holds is ``records.state``.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from common.distributed import is_rank_zero, wait_until
from common.errors import ConfigError
from common.io import atomic_write_text
from common.logs import get_logger
from records.layout import RunLayout, last_checkpoint, requeue_checkpoints
from records.results import migrate_row
from records.state import (
    STATE_VERSION,
    RunState,
    StageKey,
    StateError,
    config_fingerprint,
    peek_state,
    read_state,
    write_state,
)

log = get_logger()


class RunDirectory(RunLayout):
    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(path)
        self._state = RunState()
        self._record_path: Path | None = None  # where a classifier worker records instead (``record_elsewhere``)

    @property
    def state(self) -> RunState:
        """The run's state as loaded or last recorded (read it; record through this class's methods)."""
        return self._state

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
        recorded = {b["generation"]: b for b in self._state.stack_blocks}
        on_disk = {b["generation"]: b for b in manifest.get("blocks", [])}
        pending = {g for g in on_disk if g not in recorded and not self.is_done(StageKey.push(g))}
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

    def read_state(self) -> RunState:
        """The state file as it is on disk, or ConfigError naming it when it cannot be read."""
        try:
            return read_state(self.state_path)
        except StateError as error:
            raise ConfigError(f"{error}: restore it from a backup to resume this run, or choose another "
                              "loop.run_dir (its results.jsonl and checkpoints stay where they are)") from error

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
        if state.version != STATE_VERSION:
            raise ConfigError(
                f"run directory {self.path} was written by another version of this tool (state version "
                f"{state.version}, this one writes {STATE_VERSION}) and cannot be resumed: choose another "
                f"loop.run_dir (its {self.results_path.name} stays readable by `cli.py report`)"
            )
        if state.config_fingerprint == config_fingerprint(config_text):
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
            self._state = RunState(config_fingerprint=config_fingerprint(config_text))
        self._state.launch_id = launch_id
        if dataset is not None:
            self._state.dataset = dataset
        self.save()

    def _remove_previous_run(self) -> None:
        """Delete the previous run (a folder with this tool's state file; checked by ``check_compatible``), keeping
        the lock this launch holds, and say what was removed."""
        state = peek_state(self.state_path)
        what = (f"{len(state.completed)} completed stages, {len(state.results)} result rows" if state is not None
                else "its state was unreadable")
        for entry in self.path.iterdir():
            if entry == self.lock_path:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        log.warning(f"loop.overwrite: removed the previous run in {self.path} ({what})")

    def load(self) -> None:
        self._state = self.read_state()
        # rows an earlier release wrote, in the current fields (a resumed run's results.jsonl then holds one kind)
        self._state.results = [migrate_row(row) for row in self._state.results]

    def save(self) -> None:
        """Write the state, then ``results.jsonl`` from its rows (rank 0); a worker's record only, in a worker."""
        if self._record_path is not None:
            write_state(self._record_path, self._state)
            return
        write_state(self.state_path, self._state)
        atomic_write_text(self.results_path, "".join(json.dumps(row) + "\n" for row in self._state.results))

    def note_environment(self, stage: StageKey, environment: dict) -> None:
        """Record where and with what ``stage`` ran (saved with its ``mark_done``): ``environments`` holds each
        distinct environment once, ``stage_environment`` maps a stage to its index there."""
        environments = self._state.environments = self._state.environments or []
        if environment not in environments:
            environments.append(environment)
        self._state.stage_environment = {**(self._state.stage_environment or {}),
                                         str(stage): environments.index(environment)}

    @property
    def last_environment(self) -> dict | None:
        """The environment of the most recently recorded one (None before any stage recorded one)."""
        return self._state.last_environment

    def is_done(self, stage: StageKey) -> bool:
        return self._state.is_done(stage)

    def mark_done(self, stage: StageKey, rows: Iterable[dict] = (), *, stage_info: dict | None = None,
                  blocks: dict | None = None, stack: dict | None = None) -> None:
        """Record a completed stage, its result rows and what it changed (each given part replaces the state's)
        atomically. Rank 0 only."""
        key = StageKey.parse(str(stage))  # a misspelt key is an error here, not a stage that never completes
        if isinstance(rows, dict):
            raise TypeError(f"mark_done({key}): rows is a list of result rows, not one row")
        state = self._state
        state.results.extend(rows)
        for name, value in (("stage_info", stage_info), ("blocks", blocks), ("stack", stack)):
            if value is not None:
                setattr(state, name, value)
        if str(key) not in state.completed:
            state.completed.append(str(key))
        self.save()

    @property
    def results(self) -> list[dict]:
        return list(self._state.results)

    @property
    def dataset_card(self) -> dict | None:
        """The card of the run's dataset as the state records it (``DatasetFacts.to_json``); None for a run
        written before runs recorded it."""
        card = self._state.dataset
        return dict(card) if isinstance(card, dict) else None

    def block_report(self, generation: int) -> dict:
        """What the generation and push stages recorded about a generation's block (FID, filters, q_t, u_t)."""
        return self._state.block_report(generation)

    def with_block_report(self, generation: int, **values) -> dict:
        """The state's ``blocks`` with ``values`` added to one generation's report (to pass to ``mark_done``)."""
        blocks = dict(self._state.blocks or {})
        blocks[str(generation)] = {**blocks.get(str(generation), {}), **values}
        return blocks

    # -------------------------------------------------------------------------------------------- other ranks
    def wait_for_stage(self, stage: StageKey, rank_zero_gone: Callable[[], str | None] | None = None) -> None:
        """Wait (by polling the state file) until rank 0 has recorded ``stage``, for as long as rank 0 is alive.

        Used where ranks started together (SLURM, torchrun) must wait for rank-0-only work before any Trainer has
        set up the process group, so a collective barrier is not available yet (e.g. the first stage of a resumed
        run).
        """
        def recorded() -> bool:
            state = peek_state(self.state_path)
            return state is not None and state.is_done(stage)

        wait_until(recorded, f"finish stage {stage}", rank_zero_gone)

    def wait_for_launch(self, fingerprint: str, launch: str,
                        rank_zero_gone: Callable[[], str | None] | None = None) -> None:
        """Non-zero ranks started together with rank 0 (SLURM, torchrun) wait for it to prepare the run directory
        (which may include rebuilding the stack) for this config and launch, for as long as rank 0 is alive."""
        def prepared() -> bool:
            state = peek_state(self.state_path)
            return state is not None and state.config_fingerprint == fingerprint and state.launch_id == launch

        wait_until(prepared, f"prepare {self.state_path}", rank_zero_gone, poll_s=0.2)

    # -------------------------------------------------------------------------------------------- classifier workers
    def record_elsewhere(self, path: str | os.PathLike) -> None:
        """From now on save this state to ``path`` and leave ``state.json`` and ``results.jsonl`` alone.

        A classifier worker (``loop.classifier_parallelism: devices``) records its stages this way, so two workers
        never write the run's state at once; the launch that started it adopts the record (``adopt_worker_record``).
        """
        self._record_path = Path(path)

    def adopt_worker_record(self, path: str | os.PathLike, generation: int, classifier: str) -> list[StageKey]:
        """Record in the run's state the stages of ``classifier`` at ``generation`` that a worker's record holds and
        the state does not, in the order a sequential run records them, each with its result rows, stage info and
        environment; then delete the record. A record that is missing, half-written or of another run adopts
        nothing. Returns the adopted keys (rank 0, holding the run's lock)."""
        path = Path(path)
        record = peek_state(path)
        adopted: list[StageKey] = []
        if record is not None and record.config_fingerprint == self._state.config_fingerprint:
            for key in (StageKey.train_classifier(generation, classifier), StageKey.evaluate(generation, classifier)):
                if not record.is_done(key) or self.is_done(key):
                    continue
                index = (record.stage_environment or {}).get(str(key))
                if index is not None and 0 <= index < len(record.environments or []):
                    self.note_environment(key, record.environments[index])
                rows = [row for row in record.results if key.step == "evaluate"
                        and row.get("generation") == generation and row.get("classifier") == classifier]
                info = record.stage_record(key)
                self.mark_done(key, rows, stage_info=self.with_stage_info(key, **info) if info else None)
                adopted.append(key)
        path.unlink(missing_ok=True)
        return adopted

    # -------------------------------------------------------------------------------------------- loggers, summary
    def tracker_run(self, key: str) -> str | None:
        """The id of the experiment tracker's run recorded under ``key`` (None before one was opened)."""
        return (self._state.tracker_runs or {}).get(key)

    def remember_tracker_run(self, key: str, run_id: str) -> None:
        """Record a tracker's run id and save at once: a crash before the next stage's record must not orphan it."""
        self._state.tracker_runs = {**(self._state.tracker_runs or {}), key: run_id}
        self.save()

    @property
    def summary_generations(self) -> list[int] | None:
        """Generations the TensorBoard summary holds; None for a run whose summary an earlier version rebuilt."""
        return None if self._state.summary_generations is None else list(self._state.summary_generations)

    @property
    def summary_layout(self) -> str | None:
        return self._state.summary_layout

    def record_summary(self, generations: list[int], layout: str | None) -> None:
        """Record what the summary now holds (its generations, its layout's digest) and save."""
        self._state.summary_generations = sorted(generations)
        if layout is not None:
            self._state.summary_layout = layout
        self.save()

    # -------------------------------------------------------------------------------------------- raw shards
    def delete_raw_shards(self, generation: int) -> None:
        """Delete a generation's raw block (``gen_XX/shards/``) once its push is recorded (loop.keep_raw_shards:
        false; rank 0), and record that it is gone, so ``--loop.rebuild_stack`` can say why it cannot rebuild."""
        if not self.is_done(StageKey.push(generation)):
            return
        folder = self.shard_dir(generation)
        deleted = sorted(set(self._state.raw_shards_deleted or []) | {generation})
        if deleted != self._state.raw_shards_deleted:
            self._state.raw_shards_deleted = deleted
            self.save()  # recorded first: a crash between the two leaves a folder that is deleted again on resume
        if folder.exists():
            shutil.rmtree(folder)
            log.info(f"generation {generation}: deleted its raw shards {folder} (loop.keep_raw_shards: false)")

    def check_raw_shards_kept(self) -> None:
        """ConfigError when a generation the stack records has no raw shards to rebuild it from."""
        recorded = [block["generation"] for block in self._state.stack_blocks]
        gone = [g for g in recorded if g in (self._state.raw_shards_deleted or [])
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

    def stage_info(self, stage: StageKey) -> dict:
        """What a completed stage recorded about itself (epochs, wall time)."""
        return self._state.stage_record(stage)

    def with_stage_info(self, stage: StageKey, **values) -> dict:
        """The state's ``stage_info`` with ``stage``'s record set (to pass to ``mark_done``)."""
        return {**(self._state.stage_info or {}), str(stage): values}
