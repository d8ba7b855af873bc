"""The README's "Checked against theory" table: one Markdown row per check row, in order."""

from __future__ import annotations

import numpy as np
import pytest

from sandbox import table
from sandbox.checks import ROW_KEYS, mean_check


def _row(expected: float) -> dict:
    return mean_check(np.array([1.0, 2.0, 3.0]), expected, quantity="a | b", formula="E x = 2", source="s",
                      setting="3 seeds")


def test_the_table_prints_every_row_with_its_verdict():
    text = table.markdown_table([_row(2.0), _row(9.0)])
    lines = text.splitlines()
    assert lines[0] == "| quantity | formula | source | setting | expected | measured | tolerance | pass |"
    assert lines[2] == "| a \\| b | E x = 2 | s | 3 seeds | 2 | 2 | ± 2.3 | yes |"
    assert lines[3].endswith("| 9 | 2 | ± 2.3 | **no** |") and len(lines) == 4


def test_a_row_without_a_key_is_refused():
    row = {key: 1 for key in ROW_KEYS if key != "source"}
    with pytest.raises(ValueError, match=r"lacks \['source'\]"):
        table.markdown_table([row])


def test_main_fails_when_a_check_fails(monkeypatch, capsys):
    monkeypatch.setattr(table, "run_checks", lambda seeds: [_row(2.0), _row(9.0)])
    assert table.main(["--seeds", "3"]) == 1
    assert "1 of 2 checks pass" in capsys.readouterr().out
    monkeypatch.setattr(table, "run_checks", lambda seeds: [_row(2.0)])
    assert table.main([]) == 0


def test_with_loop_adds_the_product_loops_rows_marked_as_cli_fit(monkeypatch, capsys):
    import sandbox.loop_checks

    monkeypatch.setattr(table, "run_checks", lambda seeds: [_row(2.0)])
    monkeypatch.setattr(sandbox.loop_checks, "all_rows",
                        lambda folder: [{**_row(2.0), "setting": "replace p=1", "wrong": []}])
    assert table.main(["--seeds", "3", "--with-loop"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("| a \\| b | E x = 2 | s | 3 seeds |")
    assert lines[3].startswith("| a \\| b | E x = 2 | s | cli.py fit: replace p=1 |")
    assert "2 of 2 checks pass" in "\n".join(lines)
