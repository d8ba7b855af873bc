"""The loggers of every stage: TensorBoard always (trainers.py), plus those ``loop.loggers`` chooses: CSV, MLflow,
Weights & Biases. Each stage is its own logger run named ``<run>/<gen_XX>/<stage>``, tagged with the run, the
generation and the stage and given the run's hyperparameters; the per-generation summary is the run
``<run>/<gen_XX>/summary`` whose step is the generation, written once per generation (a resume adds only what is
missing)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger

from simulation.config import LoggerConfig

DEFAULT_EXPERIMENT = "genbias"
EXTRAS = {"mlflow": "mlflow", "wandb": "wandb"}


def logger_problems(specs: list[LoggerConfig]) -> list[str]:
    """One problem per chosen logger whose package is not installed (reported with the config's other problems)."""
    return [f"loop.loggers: {spec.kind} is not installed: pip install -e '.[{EXTRAS[spec.kind]}]' (or drop it)"
            for spec in specs if spec.kind in EXTRAS and importlib.util.find_spec(EXTRAS[spec.kind]) is None]


def _tracking_uri_problem(where: str, uri: str) -> str | None:
    """Whether MLflow can log to ``uri`` from here, asked without writing anything: a folder store (which MLflow
    >= 3.7 refuses unless ``MLFLOW_ALLOW_FILE_STORE=true``), a SQLite file's folder, a server's /health."""
    import urllib.error
    import urllib.parse
    import urllib.request

    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("", "file"):
        allowed = os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() in ("1", "true")
        version = importlib.metadata.version("mlflow") if importlib.util.find_spec("mlflow") else "0"
        if not allowed and tuple(int(p) for p in version.split(".")[:2] if p.isdigit()) >= (3, 7):
            return (f"{where}: tracking_uri {uri!r} is a folder store, which MLflow {version} refuses: use a database "
                    "(e.g. sqlite:///path/mlflow.db, or leave tracking_uri unset for <run_dir>/mlflow.db) or export "
                    "MLFLOW_ALLOW_FILE_STORE=true")
        return None
    if parsed.scheme == "sqlite":
        folder = Path(parsed.path[1:] if parsed.path.startswith("//") else parsed.path).parent
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"{where}: tracking_uri {uri!r}: cannot write in {existing}: choose a folder you can write to"
        return None
    if parsed.scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5):
                return None
        except urllib.error.HTTPError:  # the server answers (an older one without /health, or behind a proxy)
            return None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            return (f"{where}: cannot reach the MLflow server at {uri} ({reason}): start it, fix tracking_uri, or "
                    "drop this logger")
    return None


def _wandb_login_problem(where: str, spec: LoggerConfig) -> str | None:
    """An online W&B logger needs a login (WANDB_API_KEY or ``wandb login``'s netrc entry) before the first stage."""
    import netrc
    import urllib.parse

    mode = os.environ.get("WANDB_MODE", "")
    if spec.offline or mode in ("offline", "disabled", "dryrun") or os.environ.get("WANDB_API_KEY"):
        return None
    host = urllib.parse.urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        if netrc.netrc().authenticators(host):
            return None
    except (OSError, netrc.NetrcParseError):
        pass
    return (f"{where}: W&B is online but no login was found (WANDB_API_KEY, or {host} in ~/.netrc): run "
            "`wandb login`, or set offline: true (wandb sync uploads later)")


def logger_probe_problems(specs: list[LoggerConfig]) -> list[str]:
    """One problem per installed logger that cannot log from here (an MLflow tracking URI MLflow refuses or cannot
    reach, W&B online without a login), found before any stage starts. Writes nothing."""
    problems = []
    for index, spec in enumerate(specs):
        where = f"loop.loggers[{index}] ({spec.kind})"
        if spec.kind not in EXTRAS or importlib.util.find_spec(EXTRAS[spec.kind]) is None:
            continue
        if spec.kind == "mlflow" and spec.tracking_uri:
            problems.append(_tracking_uri_problem(where, spec.tracking_uri))
        elif spec.kind == "wandb":
            problems.append(_wandb_login_problem(where, spec))
    return [problem for problem in problems if problem]


def _wandb_logger(**kwargs) -> Logger:
    """A WandbLogger that ends its W&B run with its stage: the next stage then starts its own run (W&B keeps one run
    per process and Lightning's logger would otherwise reuse it)."""
    from lightning.pytorch.loggers import WandbLogger

    class StageWandbLogger(WandbLogger):
        def finalize(self, status: str) -> None:
            super().finalize(status)
            if self._experiment is not None:
                self._experiment.finish(exit_code=0 if status == "success" else 1)
                self._experiment = None

    return StageWandbLogger(**kwargs)


class StageLoggers:
    """Builds the chosen loggers for one stage (``for_stage``) and writes the per-generation summary to them."""

    def __init__(self, specs: list[LoggerConfig], run_dir: Path, run_name: str, hparams: dict) -> None:
        self.specs = list(specs)
        self.run_dir = Path(run_dir)
        self.run_name = run_name
        self.hparams = dict(hparams)

    def for_stage(self, generation_name: str, stage: str) -> list[Logger]:
        loggers = [self._build(spec, generation_name, stage) for spec in self.specs]
        for logger in loggers:
            logger.log_hyperparams(self.hparams)
        return loggers

    def _build(self, spec: LoggerConfig, generation_name: str, stage: str) -> Logger:
        title = f"{self.run_name}/{generation_name}/{stage}"
        tags = {"run": self.run_name, "generation": generation_name, "stage": stage}
        if spec.kind == "csv":
            return CSVLogger(save_dir=spec.save_dir or str(self.run_dir / "csv"), name=generation_name, version=stage)
        if spec.kind == "mlflow":
            from lightning.pytorch.loggers import MLFlowLogger

            tracking_uri = spec.tracking_uri or f"sqlite:///{(self.run_dir / 'mlflow.db').resolve()}"
            artifacts = None if spec.tracking_uri else (self.run_dir / "mlflow_artifacts").resolve().as_uri()
            return MLFlowLogger(experiment_name=spec.experiment or DEFAULT_EXPERIMENT, run_name=title,
                                tracking_uri=tracking_uri, tags=tags, artifact_location=artifacts)
        offline = spec.offline or os.environ.get("WANDB_MODE") == "offline"
        return _wandb_logger(project=spec.experiment or DEFAULT_EXPERIMENT, name=title, group=self.run_name,
                             job_type=stage, tags=list(tags.values()), save_dir=spec.save_dir or str(self.run_dir),
                             offline=offline)

    def log_summary(self, generation: int, metrics: dict[str, float]) -> None:
        """The summary of one generation, at step = generation, to every chosen logger."""
        if not self.specs or not metrics:
            return
        for logger in self.for_stage(f"gen_{generation:02d}", "summary"):
            logger.log_metrics(metrics, step=generation)
            logger.save()
            logger.finalize("success")
