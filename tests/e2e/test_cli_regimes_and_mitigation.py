"""Through the CLI: a data regime other than the paper's FIFO, and the in-loop subgroup-balance mitigation."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from datamodules.colored_mnist import color_oracle
from datamodules.stack import SyntheticStack
from filters import select_keep
from filters.subgroup_balance import balanced_counts
from metrics.block_statistics import subgroup_counts
from tests.in_process import run_cli_here

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "configs" / "tiny_mnist.yaml")
BALANCED = json.dumps([{"class_path": "filters.UncertaintyFilter", "init_args": {"ratio": 0.1, "mc_passes": 3}},
                       {"class_path": "filters.SubgroupBalanceFilter", "init_args": {"target": "uniform"}}])


def fit(run_dir: Path, *extra: str) -> list[dict]:
    """``python cli.py fit`` on the tiny config, in this process (tests/in_process.py), and the run's rows."""
    proc = run_cli_here("fit", "--config", TINY, "--loop.run_dir", str(run_dir), *extra)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def regimes(tmp_path_factory, tiny_reference_run) -> dict[str, Path]:
    """The tiny loop under the paper's FIFO (the session's plain tiny run) and under accumulate, as a regimes sweep
    lays them out."""
    root = tmp_path_factory.mktemp("regimes")
    tiny_reference_run.copy_to(root / "fifo" / "seed_0")
    fit(root / "accumulate" / "seed_0", "--data.regime.policy", "accumulate")
    return {"fifo": root / "fifo" / "seed_0", "accumulate": root / "accumulate" / "seed_0"}


def test_the_accumulate_regime_keeps_every_generation_and_uses_all_of_it(regimes):
    rows = [json.loads(line) for line in (regimes["accumulate"] / "results.jsonl").read_text().splitlines()]
    # tiny_mnist keeps 1 generation under fifo
    assert [r["stack_generations"] for r in rows] == [[], [1], [1, 2]]
    assert [r["n_synthetic"] for r in rows] == [0, 90, 180] and rows[2]["synthetic_reuse"] == 1.0


def test_the_report_compares_the_regimes_side_by_side(regimes, tmp_path):
    proc = run_cli_here("report", str(regimes["fifo"]), str(regimes["accumulate"]), "--out", str(tmp_path / "report"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figure = tmp_path / "report" / "figures" / "colored_mnist__comparison.png"
    assert figure.is_file() and figure.stat().st_size > 10_000
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "[colored_mnist__comparison.png](figures/colored_mnist__comparison.png) (the groups of this dataset side " \
           "by side" in summary
    assert "`data.regime.policy=\"accumulate\"`" in summary  # the summary names what differs between the groups


def test_the_subgroup_balance_filter_pushes_exactly_the_balanced_subset(tmp_path):
    """Whatever the tiny generator produced, the stack holds, per digit, the uniform-target subset of the colours the
    uncertainty filter left (read back from the stacked pixels)."""
    run_dir = tmp_path / "run"
    rows = fit(run_dir, "--filters", BALANCED, "--loop.generations", "1")
    saved = load_file(str(run_dir / "gen_01" / "block_scores.safetensors"))
    survivors = select_keep(saved["score/uncertainty"], saved["label"], ratio=0.1)
    available = subgroup_counts(saved["label"][survivors], saved["group"][survivors], 10, 3)
    expected = torch.stack([balanced_counts(available[c], torch.ones(3)) for c in range(10)])
    stack = SyntheticStack(run_dir / "stack", max_generations=1, verify=True)
    images, labels = stack.get_batch(torch.arange(len(stack)))
    assert torch.equal(subgroup_counts(labels, color_oracle(images), 10, 3), expected)
    assert rows[1]["filter_kept"] == int(expected.sum())
