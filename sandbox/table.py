"""``python -m sandbox.table``: run the sandbox's known-answer checks (``sandbox.checks``) and print them as the
Markdown table of the README's "Checked against theory" section.

``markdown_table`` takes any list of rows with the keys of ``sandbox.checks.ROW_KEYS``, so the product loop's checks
(``sandbox.loop_checks``: ``cli.py fit`` itself on a known world with perfect generators) join the same table:
``--with-loop`` runs them too (a few minutes on 2 cores), each row's setting then starting with ``cli.py fit``.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sandbox.checks import ROW_KEYS, Z, run_checks

HEADER = ("quantity", "formula", "source", "setting", "expected", "measured", "tolerance", "pass")


def _cell(row: dict, key: str) -> str:
    value = row[key]
    if key == "passed":
        return "yes" if value else "**no**"
    if key in ("expected", "measured", "tolerance"):
        return f"± {value:.2g}" if key == "tolerance" else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown_table(rows: Sequence[dict]) -> str:
    """One Markdown row per check, in the given order; a row missing a key of ``ROW_KEYS`` is an error."""
    for row in rows:
        missing = [key for key in ROW_KEYS if key not in row]
        if missing:
            raise ValueError(f"a check row lacks {missing}: rows have the keys {list(ROW_KEYS)}")
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_cell(row, key) for key in ROW_KEYS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.table", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=100, help="seeds of every check (default 100)")
    parser.add_argument("--with-loop", action="store_true",
                        help="also run the product loop's checks through cli.py fit (sandbox.loop_checks)")
    options = parser.parse_args(argv)
    if options.seeds < 2:
        parser.error("--seeds must be >= 2 (the tolerance is a standard error over seeds)")
    rows = run_checks(options.seeds)
    if options.with_loop:
        from sandbox.loop_checks import all_rows

        with tempfile.TemporaryDirectory(prefix="genbias-loop-checks-") as folder:
            rows += [{**r, "setting": f"cli.py fit: {r['setting']}"} for r in all_rows(Path(folder))]
    print(markdown_table(rows), end="")
    print(f"\nTolerance: {Z:g} Monte Carlo standard errors over the seeds. "
          f"{sum(r['passed'] for r in rows)} of {len(rows)} checks pass.")
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
