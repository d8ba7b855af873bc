"""`cli.py report` on damaged run directories or an unusable --out: one line `error: ...`, exit code 2, no
traceback, nothing written, the run directories untouched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import cli
from tests.fakes.run_dirs import make_run


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def damage(name: str, content: bytes):
    def apply(run: Path, tmp: Path) -> Path:
        (run / name).write_bytes(content)
        return tmp / "report"
    return apply


def out_is_a_file(run: Path, tmp: Path) -> Path:
    (tmp / "report.md").write_text("my notes")
    return tmp / "report.md"


def out_below_a_file(run: Path, tmp: Path) -> Path:
    (tmp / "notes.txt").write_text("my notes")
    return tmp / "notes.txt" / "report"


def out_read_only(run: Path, tmp: Path) -> Path:
    if os.geteuid() == 0:
        pytest.skip("root writes through permission bits (the case below a file covers an uncreatable --out)")
    locked = tmp / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return locked / "report"


def out_is_the_run(run: Path, tmp: Path) -> Path:
    return run


CASES = {
    "corrupt state.json": (damage("state.json", b'{"version": 2, "blocks": {"1": {"fid": 3'),
                           "state.json is not valid JSON"),
    "state.json not a state": (damage("state.json", b"[1, 2, 3]"), "state.json is not a run state of this tool"),
    "state.json bad blocks": (damage("state.json", b'{"blocks": {"one": {}}}'), "malformed 'blocks' entry"),
    "corrupt results.jsonl": (damage("results.jsonl", b'{"generation": 0, "classifier": "lenet", "datas'),
                              "results.jsonl line 1 is not valid JSON"),
    "results.jsonl not rows": (damage("results.jsonl", b"[0, 1]\n"), "results.jsonl line 1 is not a result row"),
    "results.jsonl binary": (damage("results.jsonl", b"\x89PNG\r\n\x1a\n\xff\xfe"), "results.jsonl is not a text file"),
    "results.jsonl bad generation": (
        damage("results.jsonl", b'{"generation": "zero", "classifier": "lenet", "dataset": "colored_mnist"}\n'),
        "generation = 'zero' is not an integer"),
    "corrupt config.yaml": (damage("config.yaml", b"loop: {generations: [\n"), "config.yaml is not valid YAML"),
    "config.yaml not a mapping": (damage("config.yaml", b"- 1\n- 2\n"), "config.yaml is not a config of this tool"),
    "--out an existing file": (out_is_a_file, "is an existing file, not a folder"),
    "--out below a file": (out_below_a_file, "cannot be created"),
    "--out read-only": (out_read_only, "cannot be written"),
    "--out the run directory": (out_is_the_run, "is one of the run directories"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_report_refuses_with_one_line_and_writes_nothing(tmp_path, capsys, case):
    prepare, message = CASES[case]
    run = make_run(tmp_path / "runs" / "exp" / "seed_0", 0)
    out = prepare(run, tmp_path)
    before_run, before_tmp = snapshot(run), snapshot(tmp_path)
    code = cli.main(["report", str(run), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert snapshot(run) == before_run and snapshot(tmp_path) == before_tmp  # nothing written, nothing touched
    assert not (tmp_path / "report").exists()


def _bad_yaml(tmp: Path) -> str:
    (tmp / "bad.yaml").write_text("run_dirs: [a\n")
    return str(tmp / "bad.yaml")


def _unknown_key(tmp: Path) -> str:
    (tmp / "extra.yaml").write_text("run_dirs: [a]\nout: o\ncolour: red\n")
    return str(tmp / "extra.yaml")


BAD_ARGUMENTS = {
    "nothing": (lambda tmp: [], "the following arguments are required: run_dirs, out"),
    "no --out": (lambda tmp: ["RUN"], "the following arguments are required: out"),
    "no run directory": (lambda tmp: ["--out", "OUT"], "the following arguments are required: run_dirs"),
    "--out without a value": (lambda tmp: ["RUN", "--out"], "argument --out: expected one argument"),
    "unknown option": (lambda tmp: ["RUN", "--out", "OUT", "--colour", "red"], "unrecognized arguments: --colour red"),
    "abbreviated option": (lambda tmp: ["RUN", "--ou", "OUT"], "unrecognized arguments: --ou "),
    "missing --config file": (lambda tmp: ["--config", str(tmp / "nope.yaml")], "File does not exist"),
    "--config not YAML": (lambda tmp: ["--config", _bad_yaml(tmp)], "config"),
    "--config with an unknown key": (lambda tmp: ["--config", _unknown_key(tmp)], "colour"),
    "pattern matching nothing": (lambda tmp: [str(tmp / "nothing*"), "--out", "OUT"], "matches no directory"),
}


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_every_bad_report_argument_gets_one_line_and_exit_2(tmp_path, capsys, case):
    build, message = BAD_ARGUMENTS[case]
    run = make_run(tmp_path / "runs" / "exp" / "seed_0", 0)
    args = [str(run) if a == "RUN" else str(tmp_path / "report") if a == "OUT" else a for a in build(tmp_path)]
    code = cli.main(["report", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and not (tmp_path / "report").exists()

