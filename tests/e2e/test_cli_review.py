"""The manual review workflow through the CLI: pause after each block, read the reviewer's reject list, resume.

The first launch runs ``cli.py`` as a subprocess, as a user types it; the two relaunches after each review run the
same command in this process (tests/in_process.py). Between them the run directory is made one that was written
before the manual review became a selector (its report entry then carried a fake score histogram): it resumes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.in_process import run_cli_here

ROOT = Path(__file__).resolve().parents[2]
SELECTOR_ENTRY = {"input", "kept", "dropped", "kept_per_class", "dropped_per_class"}


def as_written_before_selectors(entry: dict) -> dict:
    """A manual review's report entry as the code before filter kinds wrote it: scores 0 (kept) and -inf (rejected)
    with ratio 0, their mean and histogram around the counts."""
    counts, edges = np.histogram(np.zeros(entry["kept"]), bins=20)
    return {"ratio": 0.0, "per_class": False, "mode": "quantile", **entry,
            "score_mean": 0.0 if entry["kept"] else None,
            "score_histogram": {"counts": counts.tolist(), "edges": edges.tolist(), "num_nonfinite": entry["dropped"]}}


def test_review_pauses_then_drops_exactly_the_listed_ids(tmp_path):
    run_dir, reviews = tmp_path / "run", tmp_path / "reviews"
    reviews.mkdir()
    filters = json.dumps([{"class_path": "filters.ManualRejectFilter",
                           "init_args": {"reject_dir": str(reviews)}}])
    arguments = ["fit", "--config", str(ROOT / "tests" / "configs" / "tiny_mnist.yaml"), "--loop.run_dir",
                 str(run_dir), "--filters", filters, "--quality.pause_for_review", "true"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}

    first = subprocess.run([sys.executable, str(ROOT / "cli.py"), *arguments], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    def rerun() -> str:
        proc = run_cli_here(*arguments)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout

    assert "paused for review" in first.stdout and "gen_1.txt" in first.stdout
    sheets = sorted((run_dir / "gen_01" / "contact_sheets").glob("*.png"))
    assert sheets and not (run_dir / "results.jsonl").read_text().count("\n") > 1  # only generation 0 so far
    (reviews / "gen_1.txt").write_text("# rejected after looking at the sheet\n3\n17\n42\n")
    second = rerun()
    assert "paused for review" in second and "gen_2.txt" in second
    state_path = run_dir / "state.json"
    state = json.loads(state_path.read_text())
    assert set(state["blocks"]["1"]["filters"]["manual"]) == SELECTOR_ENTRY  # a selector reports counts, no scores
    old_entry = as_written_before_selectors(state["blocks"]["1"]["filters"]["manual"])
    state["blocks"]["1"]["filters"]["manual"] = old_entry
    state_path.write_text(json.dumps(state))  # the run directory as the code before filter kinds left it
    (reviews / "gen_2.txt").write_text("")  # nothing to reject
    rerun()
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [(r["generation"], r["filter_kept"], r["filter_dropped"]) for r in rows] == [
        (0, None, None), (1, 97, 3), (2, 100, 0)]
    blocks = json.loads(state_path.read_text())["blocks"]
    assert blocks["1"]["filters"]["manual"] == old_entry  # what an older run recorded stays as it was
    assert set(blocks["2"]["filters"]["manual"]) == SELECTOR_ENTRY
