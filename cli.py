"""Command-line entry point: ``python cli.py fit --config configs/<experiment>.yaml`` runs (or resumes) an
experiment; ``python cli.py report RUN_DIR... --out DIR`` turns run directories into tables and figures.

A LightningCLI whose ``fit`` runs the generational loop (simulation/loop.py) instead of a single
``trainer.fit``: the ``model:`` key configures the generator, ``data:`` the real dataset and the mixing,
``trainer:`` the template every stage's Trainer is built from, ``classifiers:`` and ``loop:`` the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser, get_loader, set_loader

from common.errors import ConfigError

TOP_LEVEL_HELP = """usage: cli.py {fit,report,sandbox} ...

Does training on generated data amplify subgroup bias, generation after generation?

subcommands:
  fit       run (or resume) an experiment: python cli.py fit --config configs/<experiment>.yaml [--key value ...]
  report    tables, the paper's figures and the section-5 analysis of finished runs:
            python cli.py report RUN_DIR... --out DIR   (or --config report.yaml; --print_config shows one)
  sandbox   the analytic sandbox (Gaussian-mixture world, answers known in closed form), run directories that
            `report` reads: python cli.py sandbox configs/sandbox/gaussian_mixture.yaml

python cli.py fit --help      every option of an experiment (loop, data, model, classifiers, filters, quality, trainer)
python cli.py report --help   the report's options
"""


class CommandLineError(Exception):
    """A mistake in the command line or a config file, found by the parser (printed as one line, exit code 2)."""


class ReportParser(ArgumentParser):
    """``cli.py report``'s parser: jsonargparse like ``fit`` (``--config``, ``--print_config``), errors as one line."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None):
        raise CommandLineError(" ".join(message.split())) from ex


def report_parser() -> ReportParser:
    parser = ReportParser(prog="cli.py report", description=report.__doc__)
    parser.add_argument("--config", action=ActionConfigFile,
                        help="a YAML file of these options (run_dirs: [...], out: ...); --print_config writes one")
    parser.add_argument("run_dirs", nargs="+", type=str,
                        help="run directories (quoted globs allowed, e.g. 'runs/x/seed_*')")
    parser.add_argument("--out", type=str, required=True, help="folder for results.csv, summary.md and figures/")
    parser.add_argument("--formats", type=str, default="png",
                        help="figure formats, comma-separated, of png (200 dpi), pdf and svg (vector, for papers); "
                             "PNG is always written (summary.md links it), e.g. --formats png,pdf,svg")
    return parser


def report(args: list[str]) -> None:
    """``cli.py report RUN_DIR... --out DIR``: multi-seed tables, the paper's figures and the section-5 analysis."""
    options = report_parser().parse_args(args)
    from reporting.report import report_main  # after the parse: `report --help` and a bad option need none of it
    from sandbox.report import sandbox_section  # known answers beside measured, for runs of the analytic sandbox

    report_main(options.run_dirs, options.out, options.formats, sections=[sandbox_section])


def sandbox(args: list[str]) -> None:
    """``cli.py sandbox CONFIG``: the analytic sandbox, every regime x seed of CONFIG as run directories."""
    import argparse

    from common.logs import setup_logging
    from sandbox.sweep import load_config, run_sandbox

    parser = argparse.ArgumentParser(prog="cli.py sandbox", description=sandbox.__doc__)
    parser.add_argument("config", help="a sandbox config, e.g. configs/sandbox/gaussian_mixture.yaml")
    parser.add_argument("--out", help="folder for the run directories (default: the config's out)")
    parser.add_argument("--seeds", type=int, help="number of seeds 0..N-1 (default: the config's seeds)")
    parser.add_argument("--overwrite", action="store_true", help="replace earlier sandbox runs with another config")
    options = parser.parse_args(args)
    setup_logging()
    run_sandbox(load_config(options.config, options.out, options.seeds), overwrite=options.overwrite)


def commands_without_lightning(argv: list[str]) -> int | None:
    """Run the top-level help, ``report`` and ``sandbox``, which need no Lightning; None for ``fit``.

    ``python cli.py`` runs these before its own Lightning imports (``import lightning.pytorch`` takes 3-4 times
    ``import torch``; benchmarks/bench_startup.py), so they start as fast as the libraries they use allow.
    """
    if not argv or argv[0] in ("-h", "--help"):
        print(TOP_LEVEL_HELP)
        return 0
    if argv[0] not in ("report", "sandbox"):
        return None
    try:
        (report if argv[0] == "report" else sandbox)(argv[1:])
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except CommandLineError as err:
        print(f"error: {err} (python cli.py {argv[0]} --help lists the options)", file=sys.stderr)
        return 2
    except PermissionError as err:
        print(f"error: permission denied: {err.filename or err}: fix the permissions (or choose another folder) "
              "and re-run the same command", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__" and (code := commands_without_lightning(sys.argv[1:])) is not None:
    sys.exit(code)

# What only `fit` needs, imported once the commands above are ruled out (hence imports below code)
# ruff: noqa: E402
import yaml
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from common.cuda_probe import probe_cuda_once_without_gpu
from common.errors import RankLost, RankZeroGone, WorkerLost
from common.logs import setup_logging
from datamodules.generational import GenerationalDataModule
from filters import FilterStep
from lightning_modules.generator import GeneratorModule
from simulation.config import ClassifierConfig, LoopConfig, QualityConfig
from simulation.loop import SimulationLoop
from simulation.stages import ReviewPause

# Settings that may differ between a run and its resume (not part of the run's identity)
RESUME_NEUTRAL_KEYS = ("trainer.devices", "trainer.num_nodes", "trainer.accelerator", "trainer.strategy",
                       "trainer.enable_progress_bar", "trainer.log_every_n_steps", "data.num_workers",
                       "data.pin_memory", "loop.generator_checkpoint_every_n_steps",
                       "loop.keep_raw_shards", "data.view_store", "data.view_store_dir",
                       "loop.classifier_parallelism")
# Class paths that moved; an old config naming one gets one line naming the new one
MOVED_CLASS_PATHS = {f"callbacks.filters.{name}": f"filters.{name}"
                     for name in ("ClipScoreFilter", "ManualRejectFilter", "UncertaintyFilter")}
# Trainer settings the loop sets itself for every stage; a value given for one is refused, naming what to set instead
LOOP_OWNED_TRAINER_KEYS = {
    "max_epochs": "each stage sets its own: classifiers[].max_epochs for a classifier, loop.generator_epochs for the "
                  "generator",
    "default_root_dir": "every stage writes into the run directory: set loop.run_dir",
    "logger": "every stage logs to TensorBoard in <run_dir>/tensorboard; add CSV, MLflow or W&B with loop.loggers "
              "(e.g. --loop.loggers '[{kind: csv}, {kind: mlflow}]')",
    "enable_checkpointing": "every stage must checkpoint for the run to resume after a crash",
    "use_distributed_sampler": "the data module splits every loader across ranks itself (no padding duplicates)",
    "fast_dev_run": "a smoke run (one batch per stage, no checkpoint) leaves a run directory that looks finished: "
                    "for a quick trial use a tiny config, e.g. --config tests/configs/tiny_mnist.yaml",
}
FIT_DESCRIPTION = ("Run (or resume) an experiment: the generational loop over one run directory. Re-running the same "
                   "command, or python cli.py fit --config <run_dir>/config.yaml, resumes after the last completed "
                   "stage; --check validates everything and prints the plan without writing anything. Trainer "
                   "settings the loop owns (trainer.max_epochs, logger, default_root_dir, enable_checkpointing, "
                   "use_distributed_sampler, fast_dev_run) are not listed: each stage sets them itself.")
# Packages whose every module is imported for `fit --help`, so the help lists every generator and data source they
# define (imported only for the help: some import large libraries)
HELP_PACKAGES = ("lightning_modules", "datamodules")


def parser_message(message: str) -> str:
    """The parser's (often nested, multi-line) message as one line, naming a moved class path's new name."""
    text = " ".join(message.split())
    for old, new in MOVED_CLASS_PATHS.items():
        if old in text:
            return f"class path {old} has moved: use {new} (e.g. class_path: {new} in the config file)"
    return text


def innermost(error: BaseException) -> str:
    """The first cause of a chained error, as one line (``TypeError: ...``)."""
    while (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def load_config_value(value: str, path: str | os.PathLike = ""):
    """YAML as jsonargparse loads it; a run's saved ``config.yaml`` that the previous release wrote (the data regime's
    keys in ``data`` and ``loop``) is migrated to ``data.regime`` on read, so the saved run resumes."""
    loaded = get_loader("yaml")(value)
    if path and isinstance(loaded, dict) and saved_run_directory(path) is not None:
        from datamodules.regime_migration import to_current_layout

        return with_model_keys_as_they_ran(to_current_layout(loaded))
    return loaded


def with_model_keys_as_they_ran(config: dict) -> dict:
    """A saved run's config that has no value for a generator argument added since the previous release ran with that
    argument's old behaviour (``ADDED_SINCE_PREVIOUS``): set it, where the configured generator takes it, so that the
    saved config re-runs as it ran (Stable Diffusion's ``cache_latents: false`` for a run started before the latent
    cache) rather than under today's default and another identity."""
    import importlib
    import inspect

    from datamodules.regime_migration import ADDED_SINCE_PREVIOUS

    model = config.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("class_path"), str):
        return config
    module_name, _, class_name = model["class_path"].rpartition(".")
    try:
        parameters = inspect.signature(getattr(importlib.import_module(module_name), class_name)).parameters
    except (ImportError, AttributeError, ValueError, TypeError):
        return config  # the parser names a class path that cannot be built
    init_args = model.get("init_args") if isinstance(model.get("init_args"), dict) else {}
    added = {path[-1]: neutral for path, neutral in ADDED_SINCE_PREVIOUS.items()
             if path[:2] == ("model", "init_args") and neutral is not None}
    missing = {key: neutral for key, neutral in added.items() if key in parameters and key not in init_args}
    if not missing:
        return config
    return {**config, "model": {**model, "init_args": {**init_args, **missing}}}


#: the parser mode of ``fit``: YAML, with a saved run's config migrated on read (``load_config_value``)
CONFIG_MODE = "yaml_saved_runs_migrated"
set_loader(CONFIG_MODE, load_config_value, exceptions=(yaml.YAMLError,))


class OneLineErrorParser(LightningArgumentParser):
    """Reports a parser error as one line (the usage only with --help) instead of ~70 lines of usage text, and takes
    no abbreviated option (``--loop.generation`` is an error, not ``--loop.generations``)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("parser_mode", CONFIG_MODE)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None):
        raise CommandLineError(parser_message(message)) from ex


class SimulationCLI(LightningCLI):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("parser_class", OneLineErrorParser)
        kwargs.setdefault("model_class", GeneratorModule)
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("datamodule_class", GenerationalDataModule)
        kwargs.setdefault("save_config_callback", None)
        kwargs.setdefault("auto_configure_optimizers", False)
        kwargs.setdefault("seed_everything_default", 0)
        kwargs.setdefault("parser_kwargs", {"fit": {"description": FIT_DESCRIPTION}})
        given = kwargs.get("args") if kwargs.get("args") is not None else sys.argv[1:]
        self.command_args = [str(arg) for arg in given] if isinstance(given, list) else []
        self.help_requested = any(arg in ("-h", "--help") for arg in self.command_args)
        super().__init__(*args, **kwargs)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # the loop resumes every stage itself and always loads checkpoints with weights_only=True
        return {"fit": {"model", "train_dataloaders", "val_dataloaders", "datamodule", "ckpt_path", "weights_only"}}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_class_arguments(LoopConfig, "loop")
        parser.add_argument("--classifiers", type=list[ClassifierConfig], default=[],
                            help="downstream classifiers trained at every generation")
        parser.add_argument("--filters", type=list[FilterStep], default=[],
                            help="quality filters applied to every generated block, in order")
        parser.add_class_arguments(QualityConfig, "quality")
        parser.add_argument("--check", action="store_true",
                            help="run every validation and print the plan (stages, disk, resources) without writing "
                                 "anything; exit code 2 with the problems when there are any")
        parser.set_defaults({"trainer.enable_model_summary": False})
        if self.help_requested:  # only then: a hidden option is also left out of the saved config
            hide_loop_owned_trainer_keys(parser)

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        """Parse as LightningCLI does; a mistake is reported as one line that says where it is (the file, the entry)
        and suggests the nearest valid names."""
        from simulation.parser_messages import located_message

        try:
            super().parse_arguments(parser, args)
        except CommandLineError as err:
            argv = sys.argv[1:] if args is None else list(args)
            fit_parser = self._subcommand_parsers.get("fit") if argv[:1] == ["fit"] else None
            refused = {f"trainer.{key}": why for key, why in LOOP_OWNED_TRAINER_KEYS.items()}  # never suggested
            raise CommandLineError(located_message(str(err), argv, fit_parser, refused)) from err

    def before_instantiate_classes(self) -> None:
        """A saved ``<run_dir>/config.yaml`` holds ``null`` for the settings that are not part of the run's identity
        (RESUME_NEUTRAL_KEYS): they take their defaults, so that the saved config re-runs as it is."""
        if self.subcommand != "fit":
            return
        cfg, defaults = self.config["fit"], self._parser("fit").get_defaults()
        for key in RESUME_NEUTRAL_KEYS:
            if key in cfg and cfg[key] is None and key in defaults and defaults[key] is not None:
                cfg[key] = defaults[key]

    def instantiate_classes(self) -> None:
        """Build the configured generator, data source, filters and callbacks; a plug-in that refuses its arguments
        (a ``ConfigError``, which jsonargparse wraps in a page-long union error) is reported as its own one line."""
        try:
            super().instantiate_classes()
        except (ValueError, TypeError) as err:
            cause: BaseException | None = err
            while cause is not None and not isinstance(cause, ConfigError):
                cause = cause.__cause__ or cause.__context__
            if cause is not None:
                raise ConfigError(str(cause)) from None
            raise CommandLineError(f"the configured classes cannot be built: {innermost(err)}") from None

    def instantiate_trainer(self, **kwargs):
        """LightningCLI builds a Trainer up front that the loop never uses (each stage builds its own).

        When the configured hardware settings are impossible here (a GPU on a CPU machine, a precision the
        device cannot do, devices not matching a SLURM allocation), keep the message for the loop's single
        validation pass, so it is reported together with every other problem, and use a CPU placeholder.
        """
        from lightning.fabric.utilities.exceptions import MisconfigurationException
        from lightning.pytorch import Trainer

        # LightningCLI appends its own callbacks to the configured list in place: keep the user's for the stages
        self.configured_callbacks = list(self.config_init[self.subcommand]["trainer"].get("callbacks") or [])
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except (MisconfigurationException, ValueError, RuntimeError) as err:
            self.trainer_problem = (f"trainer settings cannot run here: {err} - fix trainer.accelerator, "
                                    "trainer.devices, trainer.num_nodes or trainer.precision "
                                    "(e.g. --trainer.accelerator cpu --trainer.precision 32-true on a CPU machine)")
            return Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False)
        self.trainer_problem = None
        return trainer

    def _config_text(self) -> str:
        """The resolved config as YAML, without the options that must not make a run 'different'.

        Where and how fast a run executes (devices, nodes, workers, progress bars) may change between a run and
        its resume, e.g. a requeued job landing on another allocation; what it computes may not.
        """
        cfg = self.config[self.subcommand].clone()
        del cfg["config"]
        del cfg["check"]
        cfg.loop.overwrite = False
        cfg.loop.rebuild_stack = False
        cfg.loop.run_dir = None  # where the run lives is not what it computes: a moved or copied run resumes
        del cfg.loop.loggers  # nor where it logs: a resume may add or drop a logger (and older runs resume)
        for key in RESUME_NEUTRAL_KEYS:
            if key in cfg:
                cfg[key] = None
        return self._parser(self.subcommand).dump(cfg, skip_none=False, skip_validation=True)

    def _run_dir(self) -> str:
        """loop.run_dir; else the run directory the (first) config file was saved in, so that
        ``fit --config <run_dir>/config.yaml`` resumes that run; else ``runs/<config stem>/seed_<seed>``."""
        loop = self.config[self.subcommand].loop
        if loop.run_dir:
            return loop.run_dir
        seed = self.config[self.subcommand].seed_everything
        configs = self.config[self.subcommand].get("config") or []
        saved_in = saved_run_directory(configs[0]) if configs else None
        if saved_in is not None:
            return str(saved_in)
        stem = Path(str(configs[0])).stem if configs else "experiment"  # the experiment, not an overrides file
        return os.path.join("runs", stem, f"seed_{seed}")

    def _ignored_options(self) -> list[str]:
        """One problem per trainer option the loop sets itself that the config or the command line gave a value."""
        given, defaults = self.config[self.subcommand].trainer, self._parser(self.subcommand).get_defaults().trainer
        return [f"trainer.{key} is not used: {why}" for key, why in LOOP_OWNED_TRAINER_KEYS.items()
                if given.get(key) != defaults.get(key)]

    def fit(self, model: GeneratorModule, datamodule: GenerationalDataModule, **kwargs) -> None:
        from common.environment import note_command_line
        from common.logs import get_logger
        from common.smoke_settings import smoke_settings
        from simulation.loggers import probe_logger_settings

        note_command_line(["cli.py", *self.command_args])  # recorded with every stage (state.json environments)
        cfg = self.config[self.subcommand]
        init = self.config_init[self.subcommand]
        loop_cfg = dataclasses.replace(init["loop"], run_dir=self._run_dir())
        trainer_cfg = init["trainer"]
        callbacks = self.configured_callbacks
        trainer_kwargs = {k: v for k, v in dict(trainer_cfg).items()
                          if k not in LOOP_OWNED_TRAINER_KEYS and k != "callbacks"}
        classifiers = [c if isinstance(c, ClassifierConfig) else ClassifierConfig(**dict(c))
                       for c in init["classifiers"]]
        smoke = smoke_settings(dict(trainer_cfg))
        if smoke:
            get_logger().warning(
                f"smoke settings ({', '.join(smoke)}): this run is a smoke test: `cli.py report` refuses to "
                "aggregate it, and scripts/sweep.py refuses to start one")
        simulation = SimulationLoop(
            loop=loop_cfg, classifiers=classifiers, generator=model, datamodule=datamodule,
            trainer_kwargs=trainer_kwargs, trainer_callbacks=callbacks, seed=cfg.seed_everything,
            config_text=self._config_text(),
            quality=init["quality"], filters=init["filters"],
            extra_problems=[*([self.trainer_problem] if self.trainer_problem else []), *self._ignored_options(),
                            *probe_logger_settings(loop_cfg.loggers)],
            world_size=self.trainer.num_devices * self.trainer.num_nodes,
            command=[sys.executable, str(Path(__file__).resolve()), "fit"],
        )
        if cfg.check:
            print("\n".join(["check passed: nothing was written", *simulation.plan()]), flush=True)
            return
        simulation.run()


class ParsedOnly(Exception):
    """Stops a parse-only SimulationCLI once its arguments are parsed: nothing is built, nothing runs."""


class ParseOnlyCLI(SimulationCLI):
    def before_instantiate_classes(self) -> None:
        super().before_instantiate_classes()
        raise ParsedOnly(self.config["fit"])


def fit_arguments_problem(args: list[str]) -> str | None:
    """Why ``cli.py fit ARGS`` would be refused by its parser (a key, a type, a class path, a YAML mistake) or
    would be a smoke run, as one line; None when it parses. Builds and runs nothing (scripts/sweep.py checks every
    task with it before anything is submitted)."""
    from common.smoke_settings import smoke_settings

    seed_logger = logging.getLogger("lightning.fabric.utilities.seed")
    level = seed_logger.level
    try:
        seed_logger.setLevel(logging.WARNING)  # "Seed set to 0" once per task
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*args parameter is intended.*")
            ParseOnlyCLI(args=["fit", *args])
    except ParsedOnly as parsed:
        smoke = smoke_settings(dict(parsed.args[0].trainer))
        return f"smoke settings {', '.join(smoke)}: a sweep's runs are results; drop them" if smoke else None
    except (CommandLineError, ConfigError) as err:
        return str(err)
    finally:
        seed_logger.setLevel(level)
    return None


def saved_run_directory(config_file) -> Path | None:
    """The run directory a ``config.yaml`` was saved in by ``fit`` (its folder holds the run's state.json), or None."""
    path = Path(str(getattr(config_file, "absolute", None) or config_file))
    from records.layout import RunLayout

    run = RunLayout(path.parent)
    return run.path if path == run.config_path and run.state_path.is_file() else None


def hide_loop_owned_trainer_keys(parser: LightningArgumentParser) -> None:
    """``fit --help`` does not list the trainer settings the loop refuses (LOOP_OWNED_TRAINER_KEYS). Only for the
    help: jsonargparse leaves a suppressed option out of a config it dumps, which would change every run's identity."""
    import argparse

    hidden = {f"trainer.{key}" for key in LOOP_OWNED_TRAINER_KEYS}
    for action in parser._actions:
        if action.dest in hidden or action.dest.rpartition(".")[0] in hidden:  # also --trainer.logger.help
            action.help = argparse.SUPPRESS


def import_plugin_modules() -> None:
    """Import every module of ``HELP_PACKAGES``, so that jsonargparse's help lists the subclasses they define."""
    import importlib
    import pkgutil

    for package_name in HELP_PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package_name}.{module.name}")


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Stop the run at once on SIGTERM (how SLURM stops a requeued or preempted job, SIGKILL following after
    KillWait). Lightning only notes a SIGTERM that arrives inside a Trainer, and under SLURM "bypasses" it, so a
    run signalled while generating or evaluating would carry on until it is killed mid-write. Lightning calls this
    handler too (it keeps existing ones). The handler ends the process by the signal itself rather than raising:
    Python may run it inside a ``__del__``, where an exception is swallowed. Every completed stage is in
    state.json and files are written atomically, so re-running the same command resumes."""

    def handler(signum, frame):
        print("[genbias] SIGTERM: stopping now; re-running the same command resumes after the last completed stage",
              file=sys.stderr, flush=True)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(args: list[str] | None = None) -> int:
    """Run the CLI; user mistakes are printed as one line (exit code 2), not as a traceback."""
    argv = sys.argv[1:] if args is None else list(args)
    inherited_launch = os.environ.get("GENBIAS_LAUNCH_ID")
    for chatty in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.seed"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    setup_logging()
    probe_cuda_once_without_gpu()
    for noise in (".*does not have many workers.*", ".*sync_dist=True.*", ".*have no `validation_step`.*",
                  ".*srun. command is available.*", ".*LeafSpec.*", ".*args parameter is intended.*",
                  ".*callbacks used to create the checkpoint.*", ".*custom batch sampler.*",
                  ".*exists and is not empty.*"):
        warnings.filterwarnings("ignore", message=noise)
    if argv[0:1] == ["fit"] and ("-h" in argv or "--help" in argv):
        import_plugin_modules()
    try:
        code = commands_without_lightning(argv)
        if code is not None:
            return code
        from common.environment import start_launch

        start_launch()
        with stop_on_sigterm():
            SimulationCLI(args=args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except PermissionError as err:  # a folder the loop must write into became read-only
        print(f"error: permission denied: {err.filename or err}: fix the permissions (or choose another "
              "loop.run_dir) and re-run the same command; the run resumes after its last completed stage",
              file=sys.stderr)
        return 2
    except CommandLineError as err:
        print(f"error: {err} (python cli.py fit --help lists the options)", file=sys.stderr)
        return 2
    except RankZeroGone as err:  # a non-zero rank whose rank 0 died or never started
        print(f"error: {err}", file=sys.stderr)
        return 1
    except WorkerLost as err:  # a classifier worker stopped: the finished ones are recorded
        print(f"error: {err}", file=sys.stderr)
        return 1
    except RankLost as err:  # another rank died mid-stage: rank 0 says which, the others stop quietly
        from common.distributed import is_rank_zero

        if is_rank_zero():
            print(f"error: {err}", file=sys.stderr)
        return 1
    except ReviewPause:
        return 0
    finally:  # a launch id made here belongs to this launch only (cli.main may be called again in one process)
        if inherited_launch is None:
            os.environ.pop("GENBIAS_LAUNCH_ID", None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
