"""``python cli.py ARGS`` run in the test's own process: ``cli.main`` is what ``cli.py`` calls, so only the
interpreter's start-up (about 6 s of imports on 2 cores) is left out.

For commands whose process is not itself what a test examines: an uninterrupted reference run, a resume after a
fault, a relaunch after a review. A launch that is killed, signalled, raced against another or spread over DDP ranks
runs ``cli.py`` as a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli_here(*args: str, cwd: Path | str = ROOT) -> subprocess.CompletedProcess:
    """Exit code and what the command printed, as ``subprocess.run(..., capture_output=True, text=True)`` returns
    them (the tool's log lines are written to whatever ``sys.stdout`` is when they are logged)."""
    import cli

    out, err, before = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(args))
    finally:
        os.chdir(before)
    return subprocess.CompletedProcess(["cli.py", *args], code, out.getvalue(), err.getvalue())
