"""A run written before ``records/`` existed (state version 2) still reports identically: ``cli.py report`` on the
stored run gives the summary and CSVs byte for byte as they were before the refactor.

tests/stored_runs/old_run_v1 is ``cli.py fit --config tests/configs/tiny_mnist.yaml --loop.generations 1`` at
commit b75bbe4, trimmed to what the report reads (state.json, results.jsonl, config.yaml);
tests/stored_runs/old_run_v1_report holds what ``cli.py report tests/stored_runs/old_run_v1`` wrote then.

One change is by design: the realised synthetic share got a name of its own (``realised_synthetic_share``, apart from
the config's target p), and the metric table lists it before the stack reuse; the comparison undoes exactly that
and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.in_process import ROOT, run_cli_here

RUN = Path("tests") / "stored_runs" / "old_run_v1"  # relative: the summary names the run directory as it was given
EXPECTED = ROOT / "tests" / "stored_runs" / "old_run_v1_report"
RENAMED = {"realised_synthetic_share": "synthetic_share", "realised synthetic share": "synthetic share"}


def as_the_previous_release_named_it(text: str) -> str:
    for new, old in RENAMED.items():
        text = text.replace(new, old)
    return text


@pytest.mark.parametrize("name", ["summary.md", "results.csv", "aggregate.csv", "comparisons.csv", "conjecture.csv"])
def test_the_stored_old_run_reports_as_before(tmp_path_factory, name):
    out = tmp_path_factory.getbasetemp() / "old_run_v1_report"
    if not (out / "summary.md").exists():
        proc = run_cli_here("report", str(RUN), "--out", str(out), cwd=ROOT)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    got, expected = as_the_previous_release_named_it((out / name).read_text()), (EXPECTED / name).read_text()
    if name == "aggregate.csv":  # one row per (group, metric): the same rows, the realised share's moved up
        got, expected = sorted(got.splitlines()), sorted(expected.splitlines())
    assert got == expected
