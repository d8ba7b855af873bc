"""The run directory: the only place that knows where a run's files live, and its atomic state file.

Layout::

    <run_dir>/config.yaml                         resolved config of the run (a different config is refused)
    <run_dir>/state.json                          completed stages, block reports, result rows (atomic, rank 0)
    <run_dir>/results.jsonl                       one row per (generation, classifier, seed), rewritten from the state
    <run_dir>/stack/                              the FIFO stack of synthetic blocks
    <run_dir>/oracle/                             the learned subgroup oracle (CIFAR-20/100's u_t)
    <run_dir>/gen_XX/generator/                   the generator stage (checkpoints/last.ckpt)
    <run_dir>/gen_XX/shards/                      the raw generated block, one safetensors shard per rank
    <run_dir>/gen_XX/block_scores.safetensors     per-sample filter scores, reference predictions and subgroups
    <run_dir>/gen_XX/fid_real_statistics.safetensors  the FID's real-side statistics (for the kept samples' FID)
    <run_dir>/gen_XX/contact_sheets/              PNG sheets of the raw block with sample ids (manual review)
    <run_dir>/gen_XX/samples.png                  a row per class of what entered the stack
    <run_dir>/gen_XX/classifiers/<name>/          a classifier stage (checkpoints/best.ckpt, last.ckpt)
    <run_dir>/tensorboard/                        per-stage Lightning logs and the across-generations summary
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from common.errors import ConfigError
from common.io import atomic_write_text

STATE_VERSION = 2


def config_fingerprint(config_text: str) -> str:
    return hashlib.sha256(config_text.encode()).hexdigest()[:16]


class RunDirectory:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.state_path = self.path / "state.json"
        self.config_path = self.path / "config.yaml"
        self.results_path = self.path / "results.jsonl"
        self.state: dict = {"version": STATE_VERSION, "completed": [], "results": []}

    # -------------------------------------------------------------------------------------------- layout
    @property
    def stack_dir(self) -> Path:
        return self.path / "stack"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    @property
    def oracle_dir(self) -> Path:
        return self.path / "oracle"

    @property
    def oracle_checkpoint(self) -> Path:
        return self.oracle_dir / "checkpoints" / "best.ckpt"

    def generation_dir(self, generation: int) -> Path:
        return self.path / f"gen_{generation:02d}"

    def generator_dir(self, generation: int) -> Path:
        return self.generation_dir(generation) / "generator"

    def shard_dir(self, generation: int) -> Path:
        return self.generation_dir(generation) / "shards"

    def block_scores_path(self, generation: int) -> Path:
        return self.generation_dir(generation) / "block_scores.safetensors"

    def fid_real_statistics_path(self, generation: int) -> Path:
        return self.generation_dir(generation) / "fid_real_statistics.safetensors"

    def contact_sheet_dir(self, generation: int) -> Path:
        return self.generation_dir(generation) / "contact_sheets"

    def samples_sheet(self, generation: int) -> Path:
        return self.generation_dir(generation) / "samples.png"

    def sample_sheets(self) -> list[tuple[int, Path]]:
        """(generation, path) of every generation's sample sheet, oldest first."""
        sheets = [(int(p.parent.name.split("_")[1]), p) for p in self.path.glob("gen_*/samples.png")]
        return sorted(sheets)

    def classifier_dir(self, generation: int, name: str) -> Path:
        return self.generation_dir(generation) / "classifiers" / name

    def classifier_checkpoint(self, generation: int, name: str) -> Path:
        """The classifier to evaluate or reuse: the best by validation loss, or the last one without validation."""
        folder = self.classifier_dir(generation, name) / "checkpoints"
        best = folder / "best.ckpt"
        return best if best.exists() else folder / "last.ckpt"

    @staticmethod
    def resume_checkpoint(stage_dir: Path) -> str | None:
        """The newest checkpoint to resume a stage from: Lightning's last.ckpt or a SLURM requeue hpc_ckpt."""
        candidates = [stage_dir / "checkpoints" / "last.ckpt", *stage_dir.glob("hpc_ckpt_*.ckpt")]
        existing = [p for p in candidates if p.exists()]
        return str(max(existing, key=lambda p: p.stat().st_mtime)) if existing else None

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
        if state.get("version") != STATE_VERSION:
            raise ConfigError(
                f"run directory {self.path} was written by another version of this tool (state version "
                f"{state.get('version')}, this one writes {STATE_VERSION}) and cannot be resumed: choose another "
                "loop.run_dir (its results.jsonl stays readable by `cli.py report`)"
            )
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

    def block_report(self, generation: int) -> dict:
        """What the generation and push stages recorded about a generation's block (FID, filters, q_t, u_t)."""
        return dict((self.state.get("blocks") or {}).get(str(generation), {}))

    def with_block_report(self, generation: int, **values) -> dict:
        """The state's ``blocks`` with ``values`` added to one generation's report (to pass to ``mark_done``)."""
        blocks = dict(self.state.get("blocks") or {})
        blocks[str(generation)] = {**blocks.get(str(generation), {}), **values}
        return blocks

    def stage_info(self, stage: str) -> dict:
        """What a completed stage recorded about itself (epochs, wall time)."""
        return dict((self.state.get("stage_info") or {}).get(stage, {}))

    def with_stage_info(self, stage: str, **values) -> dict:
        return {**(self.state.get("stage_info") or {}), stage: values}
