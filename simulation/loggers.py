"""The loggers of every stage: TensorBoard always (trainers.py), plus those ``loop.loggers`` chooses: CSV, MLflow,
Weights & Biases, shaped like the study.

One tracker run per run directory (per seed), named like the run (``quickstart/seed_0``), carries the run's
hyperparameters and the per-generation summary as series whose step is the generation, so a metric against the
generation is a native chart: in MLflow the parent run, in W&B the run of job type ``run``, in CSV one table
``<save_dir>/summary.csv`` with a row per generation. Each stage is a run of its own named ``<run>/<gen_XX>/<stage>``
under it: an MLflow child run (tag ``mlflow.parentRunId``), a W&B run in the group named like the run (job type =
the stage), a CSV folder ``<save_dir>/<gen_XX>/<stage>``. The tracker run's id is kept in ``state.json``
(``tracker_runs``), so a resume adds to the same run rather than opening a second one.

``probe_logger_settings`` checks the chosen loggers' settings (package installed, tracking URI and server, W&B mode
and login) without creating a run or writing a file, for the validation pass before any work.
"""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import io
import os
import secrets
import time
from argparse import Namespace
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from common.distributed import is_rank_zero
from common.environment import mask_url_credentials
from common.io import atomic_write_text
from common.logs import get_logger
from simulation.config import LoggerConfig

DEFAULT_EXPERIMENT = "genbias"
EXTRAS = {"mlflow": "mlflow", "wandb": "wandb"}
SUMMARY_CSV = "summary.csv"
#: MLflow's tag that nests a run under another in its UI (mlflow.utils.mlflow_tags.MLFLOW_PARENT_RUN_ID)
MLFLOW_PARENT_RUN_ID = "mlflow.parentRunId"
#: the W&B job type of the run that holds the whole run directory (the stages' job type is their stage)
WANDB_RUN_JOB_TYPE = "run"
#: MLflow refuses at most this many metrics in one log_batch call
MLFLOW_BATCH = 1000
#: the MLflow schemes a tracking URI may have (a database URI names its dialect, e.g. postgresql+psycopg2)
MLFLOW_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "databricks-uc", "file")
#: MLflow prints a "View run ... at: <url>" and a "View experiment" line for every run a tracking server ends, unless
MLFLOW_QUIET = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
WANDB_MODES = ("online", "offline", "disabled", "dryrun", "run", "shared")

log = get_logger()


# ------------------------------------------------------------------------------------------- checks before any work
def logger_problems(specs: list[LoggerConfig]) -> list[str]:
    """One problem per chosen logger whose package is not installed (reported with the config's other problems)."""
    return [f"loop.loggers: {spec.kind} is not installed: pip install -e '.[{EXTRAS[spec.kind]}]' (or drop it)"
            for spec in specs if spec.kind in EXTRAS and importlib.util.find_spec(EXTRAS[spec.kind]) is None]


def probe_logger_settings(specs: list[LoggerConfig]) -> list[str]:
    """Every problem of the chosen loggers' settings, one line each naming the entry (``loop.loggers[1]``) and the
    fix, found without creating a run, opening a store or writing a file: what is installed, the tracking URI's
    form (and a folder store MLflow >= 3.7 refuses, a sqlite file whose folder is missing, a server that does not
    answer), the W&B mode and, online, whether a W&B login exists."""
    problems = logger_problems(specs)
    for index, spec in enumerate(specs):
        where = f"loop.loggers[{index}] ({spec.kind})"
        if spec.kind == "mlflow" and spec.tracking_uri is not None:
            problems += [f"{where}: {problem}" for problem in _mlflow_uri_problems(spec.tracking_uri)]
        if spec.kind == "wandb":
            problems += [f"{where}: {problem}" for problem in _wandb_problems(spec)]
        if spec.experiment is not None and not spec.experiment.strip():
            problems.append(f"{where}: experiment is empty: give a name, or leave it out for '{DEFAULT_EXPERIMENT}'")
    return problems


def _version_at_least(package: str, minimum: tuple[int, int]) -> bool:
    try:
        version = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    numbers = []
    for part in version.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        numbers.append(int(digits or 0))
    return tuple(numbers) >= minimum


def _is_true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "y", "on")


def _mlflow_uri_problems(uri: str) -> list[str]:
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    dialect = scheme.split("+")[0]
    if not uri.strip():
        return ["tracking_uri is empty: leave it out for sqlite:///<run_dir>/mlflow.db, or give a server URL"]
    if dialect in ("", "file") or (len(scheme) == 1 and uri[1:2] == ":"):  # a plain path (or a Windows drive)
        if _version_at_least("mlflow", (3, 7)) and not _is_true(os.environ.get("MLFLOW_ALLOW_FILE_STORE")):
            return [f"tracking_uri {uri!r} is a folder store, which MLflow >= 3.7 refuses: use a sqlite file "
                    "(e.g. sqlite:///mlflow.db, or leave tracking_uri out for <run_dir>/mlflow.db) or set "
                    "MLFLOW_ALLOW_FILE_STORE=true"]
        return []
    if dialect not in MLFLOW_SCHEMES:
        return [f"tracking_uri {uri!r} has the scheme {scheme!r}, which MLflow does not know: use one of "
                f"{', '.join(MLFLOW_SCHEMES)} (e.g. sqlite:///mlflow.db or http://host:5000)"]
    if dialect in ("http", "https") and not parsed.netloc:
        return [f"tracking_uri {uri!r} names no server: write it as {dialect}://host:port"]
    if dialect in ("http", "https"):
        return _server_problems(uri)
    if dialect == "sqlite":
        database = uri[len(scheme) + 4:] if uri.lower().startswith(f"{scheme}:///") else ""
        if not database or database.startswith(":memory:"):
            return [f"tracking_uri {uri!r} names no database file: write it as sqlite:///relative/path.db or "
                    "sqlite:////absolute/path.db"]
        folder = Path(database.split("?")[0]).parent
        if not folder.is_dir():
            return [f"tracking_uri {uri!r}: the folder {folder} does not exist (sqlite does not create it): "
                    "create it or choose another path"]
        if not os.access(folder, os.W_OK | os.X_OK):  # sqlite writes a journal beside the database
            return [f"tracking_uri {uri!r}: cannot write in {folder}: choose a folder you can write to"]
    return []


def _server_problems(uri: str, timeout_s: float = 5.0) -> list[str]:
    """Whether the MLflow server answers at all (its ``/health``; any HTTP answer counts: an older server without
    that route, or a proxy): a server that is down is found before the first stage, not after it. Reads only.

    A TLS failure counts as an answer: urllib trusts only the system store, while MLflow's client also reads
    REQUESTS_CA_BUNDLE, MLFLOW_TRACKING_SERVER_CERT_PATH and MLFLOW_TRACKING_INSECURE_TLS and decides for itself."""
    import ssl
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s):
            return []
    except urllib.error.HTTPError:
        return []
    except ssl.SSLError:  # raised during the handshake without a URLError around it
        return []
    except (urllib.error.URLError, OSError) as err:
        if isinstance(getattr(err, "reason", None), (ssl.SSLError, ssl.CertificateError)):
            return []
        return [f"cannot reach the MLflow server at {uri} ({getattr(err, 'reason', err)}): start it, fix "
                "tracking_uri, or drop this logger"]


def _wandb_problems(spec: LoggerConfig) -> list[str]:
    mode = os.environ.get("WANDB_MODE")
    if mode is not None and mode.strip().lower() not in WANDB_MODES:
        return [f"WANDB_MODE={mode!r} is not a W&B mode: use one of {', '.join(WANDB_MODES)}, or unset it"]
    online = not spec.offline and (mode or "online").strip().lower() in ("online", "run", "shared")
    if online and not _wandb_login_exists():
        return ["W&B is online but no login was found (no W&B login for this account): run `wandb login` (or set "
                "WANDB_API_KEY), or "
                "log offline with offline: true (or WANDB_MODE=offline) and upload later with `wandb sync`"]
    return []


def _wandb_login_exists() -> bool:
    """Whether an online W&B run could authenticate: ``WANDB_API_KEY`` or ``WANDB_IDENTITY_TOKEN_FILE``, or the entry
    ``wandb login`` writes to the netrc file for the W&B host (only its presence is checked; nothing is sent)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    import netrc

    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    home = os.path.expanduser("~")
    paths = [os.environ["NETRC"]] if os.environ.get("NETRC") else [os.path.join(home, ".netrc"),
                                                                   os.path.join(home, "_netrc")]
    for path in paths:
        try:
            if netrc.netrc(path).authenticators(host) is not None:
                return True
        except (OSError, netrc.NetrcParseError):
            continue
    return False


# ------------------------------------------------------------------------------------------- hparams.yaml readable
def yaml_safe(value: Any) -> Any:
    """``value`` made of what ``yaml.safe_load`` reads back (dicts, lists, strings, numbers, booleans, None): a tuple
    becomes a list, a path or another object its text, so no ``!!python/tuple`` lands in an ``hparams.yaml``."""
    if isinstance(value, Mapping):
        return {str(k): yaml_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [yaml_safe(v) for v in items]
    if isinstance(value, Enum):
        return yaml_safe(value.value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _as_dict(params) -> dict:
    """Hyperparameters as Lightning hands them to a logger (a dict, an ``AttributeDict``, a ``Namespace``)."""
    return dict(vars(params) if isinstance(params, Namespace) else params or {})


class SafeYamlCSVLogger(CSVLogger):
    """Lightning's CSV logger whose ``hparams.yaml`` ``yaml.safe_load`` reads (Lightning writes tuples as
    ``!!python/tuple``, which it refuses)."""

    def log_hyperparams(self, params=None) -> None:
        super().log_hyperparams(yaml_safe(_as_dict(params)))


class SafeYamlTensorBoardLogger(TensorBoardLogger):
    """Lightning's TensorBoard logger whose ``hparams.yaml`` ``yaml.safe_load`` reads."""

    def log_hyperparams(self, params, metrics=None, step=None) -> None:
        super().log_hyperparams(yaml_safe(_as_dict(params)), metrics, step)


# ------------------------------------------------------------------------------------------- W&B, quiet
def wandb_settings():
    """W&B's settings here: silent unless ``WANDB_SILENT=false`` is set, so its banners, sync hints and run summaries
    (209 of the 239 lines a one-generation tiny run printed) do not drown the progress lines."""
    import wandb

    silent = os.environ.get("WANDB_SILENT")
    return wandb.Settings(silent=True) if silent is None or _is_true(silent) else wandb.Settings()


def _wandb_logger(**kwargs) -> Logger:
    """A WandbLogger that ends its W&B run with its stage: the next stage then starts its own run (W&B keeps one run
    per process and Lightning's logger would otherwise reuse it)."""
    from lightning.pytorch.loggers import WandbLogger

    class StageWandbLogger(WandbLogger):
        def __init__(self, **init) -> None:
            super().__init__(**init)
            self._wandb_init.pop("anonymous", None)  # W&B warns that the setting Lightning passes has no effect

        def finalize(self, status: str) -> None:
            super().finalize(status)
            if self._experiment is not None:
                self._experiment.finish(exit_code=0 if status == "success" else 1)
                self._experiment = None

    return StageWandbLogger(settings=wandb_settings(), **kwargs)


# ------------------------------------------------------------------------------------------- the loggers of a run
class StageLoggers:
    """The chosen loggers of one run directory: builds each stage's (``for_stage``), writes the per-generation summary
    to the run's own tracker runs (``log_summary``) and closes them (``finish``).

    ``run_dir`` is the run's ``RunDirectory``: its state keeps the tracker runs' ids (``tracker_runs``), so a resume
    reuses them. Only rank 0 opens tracker runs; the other ranks' stage loggers never write.
    """

    def __init__(self, specs: list[LoggerConfig], run_dir, run_name: str, hparams: dict) -> None:
        self.specs = list(specs)
        self.run_dir = run_dir
        self.run_name = run_name
        self.hparams = dict(hparams)
        self._mlflow_parents: dict[str, str] = {}  # store key -> parent run id, opened by this process

    # ---------------------------------------------------------------------------- stages
    def for_stage(self, generation_name: str, stage: str) -> list[Logger]:
        loggers = [self._build(spec, generation_name, stage) for spec in self.specs]
        for logger in loggers:
            logger.log_hyperparams(self.hparams)
        return loggers

    def _build(self, spec: LoggerConfig, generation_name: str, stage: str) -> Logger:
        title = f"{self.run_name}/{generation_name}/{stage}"
        tags = {"run": self.run_name, "generation": generation_name, "stage": stage}
        if spec.kind == "csv":
            return SafeYamlCSVLogger(save_dir=str(self._csv_dir(spec)), name=generation_name, version=stage)
        if spec.kind == "mlflow":
            from lightning.pytorch.loggers import MLFlowLogger

            os.environ.setdefault(MLFLOW_QUIET, "true")  # no two "View run" lines per stage from a tracking server
            if is_rank_zero():  # the other ranks' loggers create no run
                tags[MLFLOW_PARENT_RUN_ID] = self._mlflow_parent(spec)
            return MLFlowLogger(experiment_name=self._experiment(spec), run_name=title,
                                tracking_uri=self._tracking_uri(spec), tags=tags,
                                artifact_location=self._artifact_location(spec))
        return _wandb_logger(project=self._experiment(spec), name=title, group=self.run_name, job_type=stage,
                             tags=list(tags.values()), save_dir=str(self._wandb_dir(spec)),
                             offline=self._wandb_offline(spec))

    # ---------------------------------------------------------------------------- the run's own tracker runs
    def log_summary(self, series: Mapping[int, Mapping[str, float]]) -> None:
        """The summary of the generations in ``series`` (generation -> metrics), at step = generation, to the run's
        own tracker run of every chosen logger (the CSV table gains or replaces those generations' rows)."""
        series = {int(g): dict(m) for g, m in series.items() if m}
        if not self.specs or not series or not is_rank_zero():
            return
        for spec in self.specs:
            if spec.kind == "csv":
                self._csv_summary(spec, series)
            elif spec.kind == "mlflow":
                self._mlflow_summary(spec, series)
            else:
                self._wandb_summary(spec, series)

    def open_tracker_runs(self) -> None:
        """Open (or resume) the run's MLflow run now and record its id, so that stages logged by other processes (the
        classifier workers) nest under this one rather than each opening its own (rank 0)."""
        if is_rank_zero():
            for spec in self.specs:
                if spec.kind == "mlflow":
                    self._mlflow_parent(spec)

    def finish(self, stopped_by: BaseException | None = None) -> None:
        """Close the MLflow parent runs this process opened: ``FINISHED`` when the launch completed, ``KILLED`` when
        it was interrupted, ``FAILED`` on an error; a clean pause (``SystemExit(0)``, e.g. for a manual review) leaves
        them running for the resume. A store that cannot be reached now costs a warning, never the run's own error."""
        if not self._mlflow_parents or not is_rank_zero():
            return
        if isinstance(stopped_by, SystemExit) and stopped_by.code in (0, None):
            return
        status = "FINISHED" if stopped_by is None else \
            "KILLED" if isinstance(stopped_by, (KeyboardInterrupt, SystemExit)) else "FAILED"
        from mlflow.tracking import MlflowClient

        for key, run_id in self._mlflow_parents.items():
            try:
                MlflowClient(self._tracking_uri_of_key(key)).set_terminated(run_id, status)
            except Exception as error:  # noqa: BLE001 - closing is best effort; the run's outcome stands
                log.warning(f"could not mark the MLflow run {run_id} of {self.run_name} {status}: {error}")
        self._mlflow_parents.clear()

    def _remember(self, key: str, run_id: str) -> None:
        self.run_dir.remember_tracker_run(key, run_id)  # saved at once: a crash must not orphan the run

    # CSV
    def _csv_dir(self, spec: LoggerConfig) -> Path:
        return Path(spec.save_dir) if spec.save_dir else self.run_dir.csv_dir

    def _csv_summary(self, spec: LoggerConfig, series: dict[int, dict[str, float]]) -> None:
        path = self._csv_dir(spec) / SUMMARY_CSV
        rows: dict[int, dict[str, Any]] = {}
        if path.exists():
            with path.open(newline="") as file:
                rows = {int(row["generation"]): row for row in csv.DictReader(file)}
        for generation, metrics in series.items():
            rows[generation] = {"generation": generation, **metrics}
        columns = ["generation", *sorted({k for row in rows.values() for k in row} - {"generation"})]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows[g] for g in sorted(rows))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text.getvalue())

    # MLflow
    def _experiment(self, spec: LoggerConfig) -> str:
        return spec.experiment or DEFAULT_EXPERIMENT

    def _tracking_uri(self, spec: LoggerConfig) -> str:
        if spec.tracking_uri:
            return spec.tracking_uri
        database = self.run_dir.mlflow_database.resolve()
        if is_rank_zero() and not database.exists():  # sqlite would make it 0o644 whatever the umask
            database.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o666))
        return f"sqlite:///{database}"

    def _artifact_location(self, spec: LoggerConfig) -> str | None:
        return None if spec.tracking_uri else self.run_dir.mlflow_artifacts.resolve().as_uri()

    def _mlflow_key(self, spec: LoggerConfig) -> str:
        """The parent's key in ``tracker_runs``: the default store travels with the run directory (a moved run still
        finds its parent in its own mlflow.db). A URI's credentials are masked: state.json is readable by everyone."""
        return f"mlflow {mask_url_credentials(spec.tracking_uri or 'default')} {self._experiment(spec)}"

    def _tracking_uri_of_key(self, key: str) -> str:
        spec = next(s for s in self.specs if s.kind == "mlflow" and self._mlflow_key(s) == key)
        return self._tracking_uri(spec)

    def _mlflow_parent(self, spec: LoggerConfig) -> str:
        """The id of the run directory's MLflow run: the one ``state.json`` names when the store still holds it
        (set running again), else a new one carrying the run's hyperparameters."""
        key = self._mlflow_key(spec)
        if key in self._mlflow_parents:
            return self._mlflow_parents[key]
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self._tracking_uri(spec))
        store = mask_url_credentials(self._tracking_uri(spec))  # as the progress lines name it
        run_id = self.run_dir.tracker_run(key)
        if run_id is not None:
            try:
                if client.get_run(run_id).info.lifecycle_stage == "active":
                    client.update_run(run_id, status="RUNNING")
                    self._mlflow_parents[key] = run_id
                    log.info(f"MLflow: resuming the run {self.run_name} ({run_id}) of experiment "
                             f"{self._experiment(spec)} in {store}")
                    return run_id
            except MlflowException:
                pass
            log.warning(f"the MLflow run {run_id} of {self.run_name} is no longer in {store}: "
                        "a new one holds the generations logged from now on")
        experiment = client.get_experiment_by_name(self._experiment(spec))
        experiment_id = experiment.experiment_id if experiment is not None and \
            experiment.lifecycle_stage == "active" else client.create_experiment(
                self._experiment(spec), artifact_location=self._artifact_location(spec))
        run = client.create_run(experiment_id, run_name=self.run_name,
                                tags={"run": self.run_name, "run_dir": str(self.run_dir.path.resolve())})
        params = [Param(k, str(v)[:250]) for k, v in yaml_safe(self.hparams).items()]
        for start in range(0, len(params), 100):
            client.log_batch(run.info.run_id, params=params[start:start + 100])
        self._mlflow_parents[key] = run.info.run_id
        self._remember(key, run.info.run_id)
        log.info(f"MLflow: the run {self.run_name} ({run.info.run_id}) of experiment {self._experiment(spec)} in "
                 f"{store} holds the summary, its stages nested under it")
        return run.info.run_id

    def _mlflow_summary(self, spec: LoggerConfig, series: dict[int, dict[str, float]]) -> None:
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        run_id = self._mlflow_parent(spec)
        client = MlflowClient(self._tracking_uri(spec))
        stamp = int(time.time() * 1000)
        metrics = [Metric(key, float(value), stamp, generation)
                   for generation, values in sorted(series.items()) if not self._mlflow_holds(client, run_id,
                                                                                             generation, values)
                   for key, value in values.items()]
        for start in range(0, len(metrics), MLFLOW_BATCH):
            client.log_batch(run_id, metrics=metrics[start:start + MLFLOW_BATCH])

    @staticmethod
    def _mlflow_holds(client, run_id: str, generation: int, values: dict[str, float]) -> bool:
        """Whether the parent already holds this generation (logged by a launch that stopped before ``state.json``
        recorded it): a generation's points are logged together, so one metric's history tells."""
        return any(m.step == generation for m in client.get_metric_history(run_id, min(values)))

    # W&B
    def _wandb_dir(self, spec: LoggerConfig) -> Path:
        return Path(spec.save_dir) if spec.save_dir else self.run_dir.path

    @staticmethod
    def _wandb_offline(spec: LoggerConfig) -> bool:
        return spec.offline or os.environ.get("WANDB_MODE") in ("offline", "dryrun")

    def _wandb_summary(self, spec: LoggerConfig, series: dict[int, dict[str, float]]) -> None:
        """The run directory's W&B run (job type ``run``, in the group of its stages), resumed by its id: every
        metric's x-axis is ``generation``."""
        import wandb

        key = f"wandb {self._experiment(spec)}"
        run_id = self.run_dir.tracker_run(key)
        if run_id is None:
            run_id = secrets.token_hex(8)  # a W&B run id: letters and digits
            self._remember(key, run_id)
        save_dir = self._wandb_dir(spec)
        save_dir.mkdir(parents=True, exist_ok=True)
        run = wandb.init(project=self._experiment(spec), name=self.run_name, id=run_id, resume="allow",
                         group=self.run_name, job_type=WANDB_RUN_JOB_TYPE, dir=str(save_dir),
                         config=yaml_safe(self.hparams), mode="offline" if self._wandb_offline(spec) else None,
                         settings=wandb_settings(), reinit="finish_previous")
        try:
            run.define_metric("generation")
            run.define_metric("*", step_metric="generation")
            for generation, metrics in sorted(series.items()):
                run.log({**metrics, "generation": generation})
        finally:
            run.finish()


def tensorboard_logger(save_dir: Path, name: str, version: str) -> TensorBoardLogger:
    """The TensorBoard logger of one stage (``<save_dir>/<name>/<version>``), its ``hparams.yaml`` safe to load."""
    return SafeYamlTensorBoardLogger(save_dir=str(save_dir), name=name, version=version, default_hp_metric=False)

