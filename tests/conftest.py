"""Test-wide settings: offline, deterministic, quiet."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PYTHONHASHSEED", "0")

import pathlib  # noqa: E402
import sys  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402
import torch  # noqa: E402


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
