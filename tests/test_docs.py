"""The front door holds: every relative link and anchor in README.md and docs/*.md resolves, and every
``python cli.py ...`` / ``python scripts/sweep.py ...`` command the README shows is one the CLI accepts (so is every
one a docs page shows, templates with ``<placeholders>`` or ``...`` left out; the README shows none).

Commands are checked with the real parsers and nothing runs: ``fit`` stops right after LightningCLI has parsed and
type-checked the command line and its config files (no class is built), ``report`` and ``sandbox`` parse and read
their config with the work function replaced, and a sweep command runs with ``--dry-run`` (which prints its commands
and starts nothing; ``--list`` and ``--count`` start nothing anyway).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
COMMAND = re.compile(r"python (?:cli\.py|scripts/sweep\.py)\b")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: formatting and punctuation removed, lowercase, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w keeps letters, digits and '_', as GitHub does
    return text.replace(" ", "-")


def prose(markdown: str) -> str:
    """The text outside fenced code blocks and inline code spans (links and headings there are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", markdown))


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub gives the headings of a Markdown file (repeated headings get -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for match in HEADING.finditer(FENCE.sub("", path.read_text())):
        anchor = github_anchor(match.group(2))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """One line per relative link or anchor in ``path`` that does not resolve (external links are not fetched)."""
    problems = []
    for target in LINK.findall(prose(path.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}: ({target})"
        if root.resolve() not in (linked, *linked.parents):
            problems.append(f"{where} points outside the repository")
        elif not linked.exists():
            problems.append(f"{where}: {file_part} does not exist")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{where}: {linked.relative_to(root.resolve())} has no heading with anchor #{anchor}")
    return problems


def shown_commands(path: Path) -> list[str]:
    """Every ``python cli.py ...`` / ``python scripts/sweep.py ...`` command in a Markdown file's code blocks (a
    backslash continues a line; a trailing ``# comment`` is dropped) and inline code spans; what comes before
    ``python`` on its line is kept only when it is variable assignments (``PYTHONPATH=... python cli.py``)."""
    text = path.read_text()
    lines = []
    for block in FENCE.finditer(text):
        body = "\n".join(block.group(0).splitlines()[1:-1])
        lines += re.sub(r"[ \t]*\\\n[ \t]*", " ", body).splitlines()
    lines += [span.strip("`") for span in CODE_SPAN.findall(FENCE.sub("", text))]
    commands = []
    for line in lines:
        match = COMMAND.search(line)
        if match is None:
            continue
        before = line[:match.start()].split()
        env = [word for word in before if ENV_ASSIGNMENT.match(word)] if before and all(
            ENV_ASSIGNMENT.match(word) for word in before) else []
        command = re.sub(r"\s+#\s.*$", "", line[match.start():])  # a shell comment after the command
        commands.append(" ".join([*env, command.strip()]))
    return commands


def sweep_script():
    """``scripts/sweep.py`` as a module (it is a script, not a package member)."""
    if "sweep_script" not in sys.modules:
        spec = importlib.util.spec_from_file_location("sweep_script", ROOT / "scripts" / "sweep.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
        spec.loader.exec_module(module)
    return sys.modules["sweep_script"]


def cli_errors() -> tuple[type[Exception], ...]:
    """What cli.py raises for a command line it refuses (printed as one line, exit code 2)."""
    import cli
    from common.errors import ConfigError

    return cli.CommandLineError, ConfigError


def is_template(command: str) -> bool:
    """A pattern with placeholders (``--config <config>``, ``--config ...``) rather than a command to paste."""
    return re.search(r"<[a-z_ -]+>|(^|\s)\.\.\.", command) is not None


class _Parsed(Exception):
    """Raised by ``ParseOnlyCLI`` once the command line is parsed: nothing after it runs."""


def check_command(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parse ``command`` as cli.py or scripts/sweep.py would (in the repository root); raise when it is refused."""
    words = shlex.split(command, comments=True)
    while ENV_ASSIGNMENT.match(words[0]):
        name, _, value = words.pop(0).partition("=")
        if name == "PYTHONPATH":
            for folder in reversed(value.split(":")):
                monkeypatch.syspath_prepend(str(ROOT / folder))
        else:
            monkeypatch.setenv(name, value)
    assert words[0] == "python", command
    script, args = words[1], words[2:]
    monkeypatch.chdir(ROOT)
    if script == "scripts/sweep.py":
        sweep = sweep_script()
        if not {"--list", "--count", "--dry-run"} & set(args):
            args.insert(args.index("--") if "--" in args else len(args), "--dry-run")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = sweep.main(args)
        assert code == 0, f"{command}: exit code {code}: {err.getvalue().strip()}"
        return
    import cli

    subcommand = args[0]
    if {"-h", "--help"} & set(args[1:]) and subcommand in ("fit", "report", "sandbox"):
        with contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as exited:
            if subcommand == "fit":
                cli.import_plugin_modules()  # as cli.main does for fit --help
                cli.SimulationCLI(args=args)
            else:
                getattr(cli, subcommand)(args[1:])
        assert exited.value.code == 0, f"{command}: exit code {exited.value.code}"
        return
    if subcommand == "fit":
        class ParseOnlyCLI(cli.SimulationCLI):
            def parse_arguments(self, parser, args):
                super().parse_arguments(parser, args)
                raise _Parsed

        with pytest.raises(_Parsed):
            ParseOnlyCLI(args=args)
    elif subcommand == "report":
        import reporting.report
        from reporting.figures import parse_formats

        calls = []

        def parse_only(run_dirs, out, formats=("png",), sections=()):  # the report's own checks of its arguments
            if isinstance(formats, str):
                parse_formats(formats)
            calls.append((run_dirs, out, formats))

        monkeypatch.setattr(reporting.report, "report_main", parse_only)
        cli.report(args[1:])
        assert len(calls) == 1
    elif subcommand == "sandbox":
        import sandbox.sweep

        calls = []
        monkeypatch.setattr(sandbox.sweep, "run_sandbox", lambda *a, **k: calls.append(a))
        cli.sandbox(args[1:])
        assert len(calls) == 1
    else:
        raise ValueError(f"{command}: cli.py has no subcommand {subcommand!r} (fit, report, sandbox)")


# --- links --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    assert broken_links(page) == []


def test_github_anchor_rules():
    assert github_anchor("How the loop is defined") == "how-the-loop-is-defined"
    assert github_anchor("Analytic sandbox: checking the loop against theory") == \
        "analytic-sandbox-checking-the-loop-against-theory"
    assert github_anchor("Hard ImageNet at Stable Diffusion's resolution") == \
        "hard-imagenet-at-stable-diffusions-resolution"
    assert github_anchor("Does bias amplify? (the paper's section 5, measured)") == \
        "does-bias-amplify-the-papers-section-5-measured"
    assert github_anchor("`cli.py report`: tables_and figures") == "clipy-report-tables_and-figures"


def test_a_broken_link_or_anchor_is_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "topic.md").write_text("# A topic\n\n## Second part\n\n```\n# not a heading\n```\n")
    page = tmp_path / "README.md"
    page.write_text(
        "# Front\n\n"
        "[fine](docs/topic.md#second-part), [fine too](#front), [web](https://example.org/x#y)\n"
        "[gone](docs/missing.md), [no anchor](docs/topic.md#third-part), [code fence](docs/topic.md#not-a-heading)\n"
        "![figure](docs/figures/none.png) and `[a code span](nowhere.md)` is not a link\n"
        "[wrapped across\na line](#nothing-here)\n")
    assert broken_links(page, tmp_path) == [
        "README.md: (docs/missing.md): docs/missing.md does not exist",
        "README.md: (docs/topic.md#third-part): docs/topic.md has no heading with anchor #third-part",
        "README.md: (docs/topic.md#not-a-heading): docs/topic.md has no heading with anchor #not-a-heading",
        "README.md: (docs/figures/none.png): docs/figures/none.png does not exist",
        "README.md: (#nothing-here): README.md has no heading with anchor #nothing-here",
    ]


def test_repeated_headings_get_numbered_anchors(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Notes\n\n## Notes\n\n### Notes\n")
    assert anchors(page) == {"notes", "notes-1", "notes-2"}


# --- commands -----------------------------------------------------------------------------------------------------


README_COMMANDS = shown_commands(ROOT / "README.md")


def test_the_readme_is_a_short_front_door():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_the_readme_shows_its_two_commands_and_the_cli_ones():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    makefile = (ROOT / "Makefile").read_text()
    demo = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    test = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert demo and "cli.py fit --config configs/quickstart.yaml" in demo.group(1)
    assert test and "pytest" in test.group(1)
    assert "python cli.py fit --config configs/quickstart.yaml" in README_COMMANDS
    assert any(c.startswith("python scripts/sweep.py") for c in README_COMMANDS)
    assert any(c.startswith("python cli.py report") for c in README_COMMANDS)


def test_a_help_command_is_accepted(monkeypatch):
    check_command("python cli.py report --help", monkeypatch)


def test_commands_are_found_in_blocks_spans_and_continued_lines(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Run `python cli.py report 'runs/x/*' --out r` or:\n\n```bash\n"
        "python cli.py fit --config a.yaml \\\n  --loop.generations 2   # a comment\n"
        "PYTHONPATH=examples/plugins python cli.py fit --config b.yaml\n"
        "make demo\n```\n")
    assert shown_commands(page) == [
        "python cli.py fit --config a.yaml --loop.generations 2",
        "PYTHONPATH=examples/plugins python cli.py fit --config b.yaml",
        "python cli.py report 'runs/x/*' --out r",
    ]


@pytest.mark.parametrize("command", README_COMMANDS)
def test_every_command_the_readme_shows_is_accepted(command, monkeypatch):
    assert not is_template(command), f"the README shows a template, not a command a reader can paste: {command}"
    check_command(command, monkeypatch)


DOCS_COMMANDS = [(page.name, command) for page in DOCS[1:] for command in shown_commands(page)
                 if not is_template(command)]


@pytest.mark.parametrize(("page", "command"), DOCS_COMMANDS)
def test_every_command_a_docs_page_shows_is_accepted(page, command, monkeypatch):
    check_command(command, monkeypatch)


def test_templates_are_told_from_commands():
    assert is_template("python cli.py fit --config <config> --<key> <value>...")
    assert is_template("python cli.py fit --config ...")
    assert not is_template("python cli.py fit --config configs/quickstart.yaml --loop.loggers '[{kind: csv}]'")
    assert not is_template("python cli.py report 'runs/x/*/seed_*' --out report/")


@pytest.mark.parametrize(("command", "message"), [
    ("python cli.py fit --config configs/quickstart.yaml --loop.generation 2", "loop.generation"),
    ("python cli.py fit --config configs/no_such_experiment.yaml", "no_such_experiment.yaml"),
    ("python cli.py report runs/quickstart/seed_0", "required: out"),
    ("python scripts/sweep.py configs/sweeps/no_such_sweep.yaml --list", "no_such_sweep.yaml"),
    ("python cli.py fitt --config configs/quickstart.yaml", "no subcommand 'fitt'"),
])
def test_a_command_the_cli_refuses_fails_the_check(command, message, monkeypatch):
    with pytest.raises((AssertionError, ValueError, *cli_errors())) as caught:
        check_command(command, monkeypatch)
    assert message in str(caught.value)
