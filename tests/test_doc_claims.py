"""Every absolute claim in the docs that describe the code's shape names the test that holds it.

docs/architecture.md and docs/extending.md promise things about the code ("only X does Y", "no product file names
Z", "every plug-in meets W"). Such a promise rots silently unless a test breaks with it, so each sentence that makes
one must name, in backticks, a test function (``test_...``) or a test file (``tests/...py``) that exists. A sentence
here is a bullet, a table row or a prose sentence; fenced code is left out.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLAIM_DOCS = [ROOT / "docs" / "architecture.md", ROOT / "docs" / "extending.md"]
ABSOLUTE = re.compile(r"\b(only|never|every|always|no product|nothing|none of|no other)\b", re.IGNORECASE)
TEST_NAME = re.compile(r"`(test_[A-Za-z0-9_]+)`")
TEST_FILE = re.compile(r"`(tests/[A-Za-z0-9_/.-]+\.py)(?:::[A-Za-z0-9_]+)?`")
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)


def sentences(markdown: str) -> list[str]:
    """Bullets, table rows and prose sentences (a bullet's continuation lines joined), outside fenced code."""
    text = FENCE.sub("", markdown)
    blocks, current = [], []
    for line in text.splitlines():
        starts_new = re.match(r"\s*([-*]|\d+\.)\s|\s*\||#", line) or not line.strip()
        if starts_new and current:
            blocks.append(" ".join(current))
            current = []
        if line.strip():
            current.append(line.strip())
    if current:
        blocks.append(" ".join(current))
    out = []
    for block in blocks:
        if block.startswith(("|", "-", "*", "#")) or re.match(r"\d+\.", block):
            out.append(block)  # a bullet or a row is one claim with its evidence
        else:
            out += [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z`])", block) if s]
    return out


def defined_tests() -> set[str]:
    names = set()
    for path in (ROOT / "tests").rglob("*.py"):
        names.update(re.findall(r"^\s*def (test_[A-Za-z0-9_]+)\(", path.read_text(), re.MULTILINE))
    return names


def unbacked_claims(path: Path, tests: set[str]) -> list[str]:
    problems = []
    for sentence in sentences(path.read_text()):
        if not ABSOLUTE.search(sentence) or sentence.startswith("#"):
            continue
        named = TEST_NAME.findall(sentence)
        files = TEST_FILE.findall(sentence)
        missing = [n for n in named if n not in tests] + [f for f in files if not (ROOT / f).exists()]
        if missing:
            problems.append(f"{path.name}: names tests that do not exist {missing}: {sentence[:160]}")
        elif not named and not files:
            problems.append(f"{path.name}: an absolute claim without its test: {sentence[:160]}")
    return problems


@pytest.mark.parametrize("path", CLAIM_DOCS, ids=lambda p: p.name)
def test_every_absolute_claim_names_an_existing_test(path):
    assert unbacked_claims(path, defined_tests()) == []


def test_the_checker_finds_an_unbacked_claim_and_a_misnamed_test(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("Intro line.\n\n- Only `records/` spells paths (`test_no_literals`).\n"
                   "- Nothing imports the sandbox.\n- Every plug-in is checked (`test_missing_one`).\n\n"
                   "```\nnever in code\n```\n")
    problems = unbacked_claims(doc, {"test_no_literals"})
    assert len(problems) == 2
    assert "without its test: - Nothing imports the sandbox." in problems[0]
    assert "do not exist ['test_missing_one']" in problems[1]
