"""``cli.py sandbox CONFIG``: every regime of a sandbox config for every seed, one run directory each
(``<out>/<regime>/seed_<k>``: config.yaml, state.json with the block reports, results.jsonl), which ``cli.py report``
reads like the image loop's runs.

The config is checked whole, and every run directory is checked, before any run starts; a run directory that
already holds this run (same config) is skipped, so re-running the same command finishes an interrupted sweep.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from common.errors import ConfigError
from common.logs import get_logger
from datamodules.stack_policy import StackPolicy, policy_names
from records.run_directory import RunDirectory
from records.state import StageKey
from sandbox.loop import CLASSIFIER, Regime, run_seed
from sandbox.world import GaussianMixtureWorld

log = get_logger()
DONE = StageKey.whole_run()
TOP_KEYS = ("out", "seeds", "generations", "world", "regimes")
REGIME_KEYS = (*(f.name for f in dataclasses.fields(Regime)), "world")


@dataclass
class SandboxConfig:
    out: str
    seeds: int
    generations: int
    world: dict
    regimes: list[tuple[Regime, dict]] = field(default_factory=list)  # (regime, its world: the base + overrides)


def _world(arguments: dict, where: str) -> GaussianMixtureWorld:
    try:
        return GaussianMixtureWorld(**arguments)
    except TypeError as err:
        raise ConfigError(f"{where}: {err} (world takes means, subgroup_shares, spread, n_train_per_class, "
                          "n_test_per_subgroup)") from err
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from err


def _integer(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _regime(entry, base_world: dict, index: int) -> tuple[Regime, dict]:
    where = f"regimes[{index}]"
    if not isinstance(entry, dict) or not entry.get("name"):
        raise ConfigError(f"{where} must be a mapping with a name, e.g. {{name: mixture_replace, generator: mixture}}")
    unknown = sorted(set(entry) - set(REGIME_KEYS))
    if unknown:
        raise ConfigError(f"{where} ({entry['name']}) has unknown keys {unknown}: a regime takes {list(REGIME_KEYS)}")
    world = {**base_world, **(entry.get("world") or {})}
    settings = {k: v for k, v in entry.items() if k != "world"}
    modelled = tuple(name for name in policy_names() if not StackPolicy.named(name).draws_fresh_real)
    if settings.get("stack_policy", "replace") not in modelled:
        raise ConfigError(f"{where}.stack_policy must be one of {modelled} (the sandbox draws no fresh real data: "
                          f"the fresh regime is checked through cli.py fit, tests/theory), got "
                          f"{settings['stack_policy']!r}")
    try:
        regime = Regime.from_config(settings)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from err
    share = regime.synthetic_share
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise ConfigError(f"{where}.synthetic_share must be in [0, 1] (1: no real data once the stack holds a block), "
                          f"got {share!r}")
    _integer(regime.stack_generations, f"{where}.stack_generations", 1)
    if regime.samples_per_generation is not None:
        _integer(regime.samples_per_generation, f"{where}.samples_per_generation", 2)
    _world(world, f"{where}.world")
    return regime, world


def load_config(path: str | Path, out: str | None = None, seeds: int | None = None) -> SandboxConfig:
    """Read and check a sandbox config; ``out`` and ``seeds`` override the file's."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"sandbox config {path} cannot be read ({err.strerror or err})") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"sandbox config {path} is not valid YAML ({' '.join(str(err).split())})") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"sandbox config {path} must be a mapping with keys {list(TOP_KEYS)}")
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"sandbox config {path} has unknown keys {unknown}: it takes {list(TOP_KEYS)}")
    base_world = raw.get("world") or {}
    _world(base_world, "world")
    entries = raw.get("regimes")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"sandbox config {path} lists no regimes: add `regimes:` entries (see "
                          "configs/sandbox/gaussian_mixture.yaml)")
    regimes = [_regime(entry, base_world, i) for i, entry in enumerate(entries)]
    names = [r.name for r, _ in regimes]
    if len(set(names)) != len(names):
        raise ConfigError(f"regime names must be unique (they name the run folders), got {names}")
    return SandboxConfig(out=str(out or raw.get("out") or f"runs/sandbox/{path.stem}"),
                         seeds=_integer(seeds if seeds is not None else raw.get("seeds", 3), "seeds", 1),
                         generations=_integer(raw.get("generations", 10), "generations", 1),
                         world=base_world, regimes=regimes)


def run_config_text(regime: Regime, world: dict, seed: int, generations: int) -> str:
    """config.yaml of one run: what the report groups by (everything but the seed) and reads back."""
    config = {"seed_everything": seed, "loop": {"generations": generations},
              "data": {"source": {"init_args": {"seed": seed}}},  # the world's splits are drawn from the run's seed
              "sandbox": {"regime": regime.to_config(), "world": world},
              "classifiers": [{"name": CLASSIFIER, "arch": CLASSIFIER}]}
    return yaml.safe_dump(config, sort_keys=True)


def run_sandbox(config: SandboxConfig, overwrite: bool = False) -> list[Path]:
    """Run every (regime, seed) not yet done; returns the run directories (done before or now)."""
    planned = []
    for regime, world in config.regimes:
        for seed in range(config.seeds):
            folder = RunDirectory(Path(config.out) / regime.name / f"seed_{seed}")
            text = run_config_text(regime, world, seed, config.generations)
            planned.append((regime, world, seed, folder, text, folder.check_compatible(text, overwrite)))
    started = time.perf_counter()
    for regime, world in config.regimes:
        runs = [p for p in planned if p[0] is regime]
        todo = [p for p in runs if p[5] != "resume" or not p[3].read_state().is_done(DONE)]
        regime_start = time.perf_counter()
        source = GaussianMixtureWorld(**world)
        for _, _, seed, folder, text, mode in todo:
            rows, blocks = run_seed(source, regime, seed, config.generations)
            folder.create(text, "overwrite" if mode == "overwrite" else "new", launch_id=f"sandbox-{seed}")
            folder.mark_done(DONE, rows, blocks=blocks)
        log.info(f"sandbox {regime.name}: {len(todo)} seeds x {config.generations} generations in "
                 f"{time.perf_counter() - regime_start:.1f} s ({len(runs) - len(todo)} already done)")
    log.info(f"sandbox: {len(planned)} runs in {time.perf_counter() - started:.1f} s under {config.out}; "
             f"report them with: python cli.py report '{config.out}/*/seed_*' --out {config.out}/report")
    return [p[3].path for p in planned]
