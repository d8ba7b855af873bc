"""Optional features are members of the base classes with defaults, so no product code asks an object whether it
has one: a plug-in that forgets a member gets the default, not a silently different code path."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.test_architecture import ROOT, product_files

#: the product's ``hasattr`` calls on objects it does not define, and why (third-party internals that vary by version)
THIRD_PARTY_PROBES = {
    "common/cuda_probe.py": "torch._C's private CUDA count, absent from CPU-only builds",
    "common/rank_roster.py": "a thread object of Lightning's launcher, whose private attribute may not exist",
}


def hasattr_calls(files: list[Path]) -> list[str]:
    """``file:line`` of every ``hasattr(...)`` call in code (not in docstrings or comments)."""
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "hasattr":
                relative = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
                found.append(f"{relative}:{node.lineno}")
    return found


def test_no_product_file_probes_an_object_with_hasattr():
    files = [*product_files(), *sorted((ROOT / "sandbox").rglob("*.py"))]
    found = [where for where in hasattr_calls(files) if where.split(":")[0] not in THIRD_PARTY_PROBES]
    assert not found, "declare the member on the base class with a default instead:\n" + "\n".join(found)


def test_the_probe_scan_finds_a_call_not_a_mention(tmp_path):
    """Guards the test above: a call is found, a docstring's or a comment's mention is not."""
    module = tmp_path / "module.py"
    module.write_text('"""Never hasattr(x, "y")."""\n# hasattr(x, "y")\nok = hasattr(object, "facts")\n')
    assert hasattr_calls([module]) == [f"{module}:3"]
