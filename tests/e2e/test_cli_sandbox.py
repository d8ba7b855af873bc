"""`cli.py sandbox` end to end on a tiny config, then `cli.py report` on its runs; bad sandbox configs are one line,
exit code 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import cli

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "configs" / "sandbox" / "tiny.yaml"


def test_sandbox_then_report(tmp_path, capsys):
    out = tmp_path / "sandbox"
    assert cli.main(["sandbox", str(TINY), "--out", str(out)]) == 0
    runs = sorted(p.relative_to(out).as_posix() for p in out.glob("*/seed_*"))
    assert runs == [f"{regime}/seed_{s}" for regime in ("gaussian_replace", "mixture_fifo") for s in range(3)]
    run = out / "mixture_fifo" / "seed_1"
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in rows] == [0, 1, 2, 3] and {r["seed"] for r in rows} == {1}
    assert rows[3]["stack_generations"] == [1, 2, 3] and rows[3]["n_synthetic"] == 60  # fifo, p = 0.5 of 60 real
    state = json.loads((run / "state.json").read_text())
    assert sorted(state["blocks"]) == ["1", "2", "3"] and "minority_share_class" in state["blocks"]["3"]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["seed_everything"] == 1 and config["sandbox"]["regime"]["stack_policy"] == "fifo"

    before = (run / "state.json").read_bytes()
    assert cli.main(["sandbox", str(TINY), "--out", str(out)]) == 0  # done runs are skipped
    assert (run / "state.json").read_bytes() == before

    report = tmp_path / "report"
    assert cli.main(["report", f"{out}/*/seed_*", "--out", str(report)]) == 0
    summary = (report / "summary.md").read_text()
    assert "## Known answers (analytic sandbox)" in summary
    line = next(x for x in summary.splitlines() if x.startswith("| gaussian_replace | fitted_variance_ratio"))
    theory = float(line.split("|")[5])
    first = 1 - 2 * 0.5 ** 2 / (30 * (2 * 0.5 ** 2 + 0.09 * (1.5 ** 2 + 4 ** 2)))  # the stratified real set's fit
    assert theory == pytest.approx(first * (29 / 30) ** 2, abs=1e-4)  # then two refits on 30 points a class
    assert "| mixture_fifo | minority_share | 3 |" in summary
    assert "3 seeds covered it in 71-80% of cases" in summary  # the few-seeds caveat
    assert summary.index("## Known answers (analytic sandbox)") < summary.index("## Environment")  # before it
    assert "varies over the runs (0, 1, 2)" in summary  # the generic data-seed caveat: each run draws its own world
    assert (report / "figures" / "sandbox__known_answers.png").stat().st_size > 10_000
    assert (report / "figures" / "gaussian_replace__overview.png").is_file()


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["regimes"][0].update(stack_policy="lifo"), "regimes[0].stack_policy must be one of"),
    (lambda c: c["regimes"][0].update(stack_policy="fresh"), "(the sandbox draws no fresh real data: the fresh "
                                                             "regime is checked through cli.py fit, tests/theory)"),
    (lambda c: c["regimes"][1].update(synthetic_share=1.5), "regimes[1].synthetic_share must be in [0, 1]"),
    (lambda c: c["world"].update(spread=-1), "world: world.spread must be > 0"),
    (lambda c: c.update(seed=3), "unknown keys ['seed']"),
    (lambda c: c["regimes"][1].update(name="gaussian_replace"), "regime names must be unique"),
    (lambda c: c["regimes"][0].update(generator="gan"), "regimes[0]: generator must be one of ['gaussian', 'mixture']"),
])
def test_a_bad_sandbox_config_is_one_line_and_writes_nothing(tmp_path, capsys, edit, message):
    config = yaml.safe_load(TINY.read_text())
    edit(config)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "runs"
    assert cli.main(["sandbox", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_folder_that_is_not_a_sandbox_run_is_refused_before_any_run(tmp_path, capsys):
    out = tmp_path / "runs"
    (out / "mixture_fifo" / "seed_2").mkdir(parents=True)
    (out / "mixture_fifo" / "seed_2" / "notes.txt").write_text("mine")
    assert cli.main(["sandbox", str(TINY), "--out", str(out)]) == 2
    assert "is not a run of this tool" in capsys.readouterr().err
    assert not (out / "gaussian_replace").exists()
