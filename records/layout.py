"""Where every file of a run lives: the one place that spells a run directory's names.

Layout::

    <run_dir>/.lock                               held by the launch running on this folder (simulation/run_lock.py)
    <run_dir>/config.yaml                         resolved config of the run (a different config is refused)
    <run_dir>/state.json                          completed stages, block reports, result rows, the dataset's card
                                                  (atomic, rank 0; records/state.py reads and writes it)
    <run_dir>/results.jsonl                       one row per (generation, classifier, seed), rewritten from the state
    <run_dir>/stack/                              the FIFO stack of synthetic blocks (its own files and manifest:
                                                  datamodules/stack_blocks.py)
    <run_dir>/oracle/                             the learned subgroup oracle (CIFAR-20/100's u_t)
    <run_dir>/gen_XX/generator/                   the generator stage (checkpoints/last.ckpt)
    <run_dir>/gen_XX/shards/                      the raw generated block: checksummed chunk files, one per batch
                                                  (common/generated.py; deleted after its push with
                                                  loop.keep_raw_shards: false)
    <run_dir>/gen_XX/block_scores.safetensors     per-sample filter scores, reference predictions and subgroups
    <run_dir>/gen_XX/fid_real_statistics.safetensors  the FID's real-side statistics (for the kept samples' FID)
    <run_dir>/gen_XX/contact_sheets/              PNG sheets of the raw block with sample ids (manual review)
    <run_dir>/gen_XX/samples.png                  a row per class of what entered the stack
    <run_dir>/gen_XX/classifiers/<name>/          a classifier stage (checkpoints/best.ckpt, last.ckpt); run side
                                                  by side, also its worker's worker.log and, until adopted,
                                                  worker_record.json
    <run_dir>/tensorboard/gen_XX/<stage>/         per-stage Lightning logs
    <run_dir>/tensorboard/summary/                the across-generations summary (simulation/summary.py)
    <run_dir>/csv/, mlflow.db, mlflow_artifacts/  the other loggers' stores when they have no save_dir of their own
"""

from __future__ import annotations

import os
import re
from pathlib import Path

LOCK_FILE = ".lock"
CONFIG_FILE = "config.yaml"
STATE_FILE = "state.json"
RESULTS_FILE = "results.jsonl"
#: the name (without .ckpt) Lightning's ModelCheckpoint is given for a stage's last and best checkpoints
LAST_CHECKPOINT = "last"
BEST_CHECKPOINT = "best"
#: SLURM requeue checkpoints Lightning writes into a stage's folder
REQUEUE_CHECKPOINT_GLOB = "hpc_ckpt_*.ckpt"
#: the generations' sample sheets, as the report names them when it finds none
SAMPLES_SHEETS = "gen_XX/samples.png"
#: where a generation's stages log in TensorBoard and the other loggers: ``gen_XX``
_GENERATION_FOLDER = re.compile(r"gen_(\d+)")


def generation_name(generation: int) -> str:
    """``gen_01``: a generation's folder in the run directory and its name in TensorBoard and the other loggers."""
    return f"gen_{generation:02d}"


def checkpoint_dir(stage_dir: Path) -> Path:
    return Path(stage_dir) / "checkpoints"


def last_checkpoint(stage_dir: Path) -> Path:
    """A stage's ``checkpoints/last.ckpt``: what a killed stage resumes from and what the next generation loads."""
    return checkpoint_dir(stage_dir) / f"{LAST_CHECKPOINT}.ckpt"


def best_checkpoint(stage_dir: Path) -> Path:
    return checkpoint_dir(stage_dir) / f"{BEST_CHECKPOINT}.ckpt"


def requeue_checkpoints(stage_dir: Path) -> list[Path]:
    return sorted(Path(stage_dir).glob(REQUEUE_CHECKPOINT_GLOB))


class RunLayout:
    """The paths of one run directory; nothing here reads or writes a file."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def state_path(self) -> Path:
        return self.path / STATE_FILE

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS_FILE

    @property
    def stack_dir(self) -> Path:
        return self.path / "stack"

    @property
    def latent_cache_dir(self) -> Path:
        """Stable Diffusion's latents of the real images and stack blocks (``datamodules.latent_cache``)."""
        return self.path / "latent_cache"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    @property
    def summary_tensorboard_dir(self) -> Path:
        """The across-generations TensorBoard summary (one run named ``summary`` beside the stages' runs)."""
        return self.tensorboard_dir / "summary"

    @property
    def csv_dir(self) -> Path:
        """The CSV logger's store when it names no save_dir."""
        return self.path / "csv"

    @property
    def mlflow_database(self) -> Path:
        return self.path / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.path / "mlflow_artifacts"

    @property
    def oracle_dir(self) -> Path:
        return self.path / "oracle"

    @property
    def oracle_checkpoint(self) -> Path:
        return best_checkpoint(self.oracle_dir)

    def generation_dir(self, generation: int) -> Path:
        return self.path / generation_name(generation)

    def generator_dir(self, generation: int) -> Path:
        return self.generation_dir(generation) / "generator"

    def generator_checkpoint(self, generation: int) -> Path:
        """The generator a generation ends with (``gen_XX/generator/checkpoints/last.ckpt``)."""
        return last_checkpoint(self.generator_dir(generation))

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
        sheets = []
        for folder in self.path.glob("gen_*"):
            match = _GENERATION_FOLDER.fullmatch(folder.name)
            sheet = folder / self.samples_sheet(0).name
            if match and sheet.is_file():
                sheets.append((int(match[1]), sheet))
        return sorted(sheets)

    def classifier_dir(self, generation: int, name: str) -> Path:
        return self.generation_dir(generation) / "classifiers" / name

    def worker_record_path(self, generation: int, name: str) -> Path:
        """What a classifier worker recorded (its state), until the launch that started it adopts it."""
        return self.classifier_dir(generation, name) / "worker_record.json"

    def worker_log_path(self, generation: int, name: str) -> Path:
        """Everything a classifier worker printed (its lines also reach the launch's output, prefixed)."""
        return self.classifier_dir(generation, name) / "worker.log"

    def classifier_checkpoint(self, generation: int, name: str) -> Path:
        """The classifier to evaluate or reuse: the best by validation loss, or the last one without validation."""
        best = best_checkpoint(self.classifier_dir(generation, name))
        return best if best.exists() else last_checkpoint(self.classifier_dir(generation, name))
