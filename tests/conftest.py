"""Test-wide settings: offline, deterministic, quiet; how the suite shares 2 cores (pytest-xdist).

The suite runs on as many pytest-xdist workers as there are cores (at most ``MAX_AUTO_WORKERS``; ``-n 0`` runs it in
one process). Under xdist:
- each worker and every process it starts gets its share of the cores as torch threads (two 2-thread processes on 2
  cores spin against each other, ~4x slower); a run and its resume in one test always see the same thread count, so
  results that must be equal stay equal (they are reproducible for a given thread count, see docs/loop.md, Seeds);
- the tests of a module with a module-scoped fixture (a finished run, fake assets) run on one worker, so it is built
  once, and all SLURM tests run on one worker (the local cluster has 2 CPUs: two workers' jobs would queue); every
  other test is handed out on its own;
- the SLURM, end-to-end and benchmark tests are handed out first, so no long test starts last.
A folder that many tests read is built once per session for every worker: ``tests/session_once.py``.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PYTHONHASHSEED", "0")


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if os.environ.get("PYTEST_XDIST_WORKER_COUNT") and "OMP_NUM_THREADS" not in os.environ:  # before torch is imported
    os.environ["OMP_NUM_THREADS"] = str(max(1, usable_cores() // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))

import functools  # noqa: E402
import pathlib  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402
import torch  # noqa: E402

#: ``-n auto`` (the default, pyproject.toml) starts one worker per core up to this many: every worker holds torch,
#: Lightning and a tiny run (~1.5 GB), and most tests start processes of their own
MAX_AUTO_WORKERS = 4
#: folders (under tests/) whose tests are handed out first under xdist: the long ones
LONG_FIRST = ("slurm", "e2e", "benchmarks")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config) -> int:
    return max(1, min(usable_cores(), MAX_AUTO_WORKERS))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadscope`` (the default, pyproject.toml) with units of work that fit this suite: every SLURM test in
    one unit, a module that builds a module-scoped fixture in one unit (the fixture is built once), every other test
    on its own (so the last minutes are shared evenly). The controller sees node ids only, so a module's fixtures are
    read off its source."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SuiteScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            if module.startswith("tests/slurm/"):
                return "tests/slurm"
            return module if _builds_module_fixtures(module) else nodeid

    return SuiteScheduling(config, log)


@functools.cache
def _builds_module_fixtures(module: str) -> bool:
    path = ROOT / module
    return path.is_file() and re.search(r"scope=[\"'](module|class|package)[\"']", path.read_text()) is not None


def pytest_collection_modifyitems(config, items):
    """Under xdist, hand out the long tests first (the workers' collections must agree: a stable sort)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {folder: i for i, folder in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(pathlib.Path(item.path).relative_to(ROOT / "tests").parts[0], len(rank)))


@pytest.fixture(autouse=True)
def _no_global_torch_state_leaks():
    """Process-wide torch settings a test may change (Lightning's ``deterministic=True`` switches on deterministic
    algorithms, the benchmarks set the thread count) and the environment (an in-process run records its launch id
    there, a benchmark its thread count): a later in-process run, or a subprocess that inherits the environment,
    would otherwise compute slightly different floats than the same command run on its own."""
    threads, environment = torch.get_num_threads(), dict(os.environ)
    yield
    torch.use_deterministic_algorithms(False)
    torch.set_num_threads(threads)
    os.environ.clear()
    os.environ.update(environment)
