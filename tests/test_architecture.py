"""The floor plan holds: no package imports from a floor above it, and the packages form no import cycle."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: package -> floor (docs/architecture.md); a package may import only from its own floor or below. ``sandbox`` is its
#: own wing on top: it uses the floors below, nothing below it imports it, and only ``cli.py`` calls it
FLOORS = {"common": 0, "metrics": 1, "filters": 1, "datamodules": 1, "lightning_modules": 1, "callbacks": 2,
          "records": 2, "simulation": 3, "reporting": 3, "sandbox": 4, "cli": 5}
#: packages on one floor that import nothing of each other: the loop writes a run's record, the report reads it, and
#: both speak through records/ only
WINGS = ("simulation", "reporting")


def imported_packages(path: Path) -> set[str]:
    """First-party top-level packages imported anywhere in a file (lazy imports inside functions included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names if name.split(".")[0] in FLOORS}
    return found


def package_graph() -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> the files that import it."""
    graph: dict[str, dict[str, list[str]]] = {package: {} for package in FLOORS}
    for package in FLOORS:
        files = [ROOT / "cli.py"] if package == "cli" else sorted((ROOT / package).rglob("*.py"))
        for path in files:
            for imported in imported_packages(path) - {package}:
                graph[package].setdefault(imported, []).append(str(path.relative_to(ROOT)))
    return graph


def test_every_product_package_has_a_floor():
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "benchmarks", "scripts"}
    assert on_disk == set(FLOORS) - {"cli"}


def test_no_package_imports_from_a_floor_above():
    upward = [f"{package} (floor {FLOORS[package]}) imports {imported} (floor {FLOORS[imported]}) in {files}"
              for package, imports in package_graph().items() for imported, files in imports.items()
              if FLOORS[imported] > FLOORS[package]]
    assert not upward, "\n".join(upward)


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports (lazy imports included), by its full dotted name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_the_loop_and_the_report_import_nothing_of_each_other():
    """simulation/ writes a run's record and reporting/ reads it; what both need to know about it is in records/."""
    crossing = [f"{path.relative_to(ROOT)} imports {module}"
                for package, other in (WINGS, WINGS[::-1]) for path in sorted((ROOT / package).rglob("*.py"))
                for module in imported_modules(path)
                if module.split(".")[0] == other]
    assert not crossing, "\n".join(crossing)


def test_packages_form_no_import_cycle():
    graph = {package: set(imports) for package, imports in package_graph().items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(package: str) -> None:
        assert package not in visiting, "import cycle: " + " -> ".join([*visiting[visiting.index(package):], package])
        if package in done:
            return
        visiting.append(package)
        for imported in sorted(graph[package]):
            visit(imported)
        visiting.pop()
        done.add(package)

    for package in sorted(graph):
        visit(package)


def test_the_checker_sees_lazy_imports(tmp_path):
    """Guards the tests above: an import inside a function counts too."""
    module = tmp_path / "module.py"
    module.write_text("def f():\n    from simulation.loop import SimulationLoop\n    import common.errors\n")
    assert imported_packages(module) == {"simulation", "common"}



def product_files() -> list[Path]:
    """Every Python file of the product: the floors' packages, cli.py and the scripts."""
    return [ROOT / "cli.py", *(p for package in [*FLOORS, "scripts"] if package != "cli"
                               for p in sorted((ROOT / package).rglob("*.py")))]


def name_mentions(files: list[Path], owners: dict[str, Path]) -> list[str]:
    """``file names X`` for every whole-word mention of a name in a file other than the one that owns it."""
    return [f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} names {name}" for path in files
            for name, owner in owners.items()
            if path != owner and re.search(rf"\b{re.escape(name)}\b", path.read_text())]


def plugin_owners() -> dict[str, Path]:
    """Every registered dataset's name and class name, and every generator's class name -> the file defining it."""
    from tests.contracts.registry import DATASETS, GENERATORS

    owners = {name: Path(inspect.getfile(case.cls)) for case in DATASETS for name in (case.name, case.cls.__name__)}
    owners.update({case.cls.__name__: Path(inspect.getfile(case.cls)) for case in GENERATORS})
    return owners


def test_no_product_file_names_a_dataset_or_generator_other_than_its_own_module():
    """A plug-in states its facts in its own module (and its configs): no list of datasets or generators elsewhere.
    (The sandbox wing's checks write the configs of its own plug-ins, so the wing is left out.)"""
    files = [path for path in product_files() if not path.is_relative_to(ROOT / "sandbox")]
    found = name_mentions(files, plugin_owners())
    assert not found, "\n".join(found)


def test_the_name_checker_finds_a_mention_outside_the_owner_only(tmp_path):
    """Guards the test above: a whole-word mention elsewhere is found, the owner's own and a longer name are not."""
    owners = plugin_owners()
    elsewhere = tmp_path / "results.py"
    elsewhere.write_text('PER_CLASS = ("cifar20", "breeds_living17x")\n')
    assert name_mentions([elsewhere, owners["CIFAR20"]], owners) == [f"{elsewhere} names cifar20"]


#: what the image loop's floors must not know about the analytic sandbox: its package and its world's names
SANDBOX_WORDS = ("sandbox", "GaussianMixtureWorld", "gaussian_mixture")
BELOW_THE_SANDBOX = ("datamodules", "simulation", "reporting")


def sandbox_mentions(files: list[Path]) -> list[str]:
    """``file imports sandbox`` / ``file names WORD`` (case-insensitive, anywhere: code, docstrings, comments)."""
    found = [f"{path.name} imports sandbox" for path in files if "sandbox" in imported_packages(path)]
    found += [f"{path.name} names {word}" for path in files for word in SANDBOX_WORDS
              if word.lower() in path.read_text().lower()]
    return found


def test_the_image_loops_floors_neither_import_nor_name_the_sandbox():
    """The sandbox is a wing above reporting: datamodules, simulation and reporting work without it, so nothing there
    imports it or names it or its world (cli.py passes its report section to ``report_main``)."""
    files = [p for package in BELOW_THE_SANDBOX for p in sorted((ROOT / package).rglob("*.py"))]
    assert files and not sandbox_mentions(files), "\n".join(sandbox_mentions(files))


def test_the_sandbox_checker_finds_an_import_and_a_name(tmp_path):
    """Guards the test above: a lazy import, a docstring mention and the world's name are all found."""
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    from sandbox.world import PointSplit\n")
    named = tmp_path / "named.py"
    named.write_text('"""Read the Sandbox runs."""\nWORLD = "gaussian_mixture"\n')
    clean = tmp_path / "clean.py"
    clean.write_text("from reporting.runs import Group\n")
    assert sandbox_mentions([lazy, named, clean]) == ["lazy.py imports sandbox", "lazy.py names sandbox",
                                                      "named.py names sandbox", "named.py names gaussian_mixture"]


#: the names of a run's files that only records/ spells (records/layout.py owns them)
RUN_FILE_LITERALS = ("state.json", "results.jsonl", "last.ckpt", "gen_")
#: files that spell ``gen_`` for something that is not a run directory's folder, and why
NOT_RUN_FOLDERS = {
    # the stack is a self-contained store with its own manifest (benchmarks open one without a run): its block
    # files gen_<g>_images.npy / gen_<g>_labels.npy are its format; the run's layout names only its folder
    "datamodules/stack_blocks.py": "the stack's own block files",
    # a reviewer's reject lists gen_<g>.txt live in a folder the user names, outside any run directory
    "filters/manual.py": "ManualRejectFilter's reject lists",
}


def code_strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string in a file's code: literals and f-strings' literal parts, not docstrings or
    comments (which describe the layout to a reader, and may name its files)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value, str)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def run_file_spellings(files: list[Path]) -> list[str]:
    """``file:line spells 'name'`` for every run-file literal outside records/ (and the justified exceptions)."""
    found = []
    for path in files:
        relative = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        if relative.startswith("records/"):
            continue
        for line, text in code_strings(path):
            for literal in RUN_FILE_LITERALS:
                if literal in text and not (literal == "gen_" and relative in NOT_RUN_FOLDERS):
                    found.append(f"{relative}:{line} spells {literal!r}")
    return found


def test_only_records_spells_the_run_files():
    """records/layout.py names every file of a run; the loop, the report, the sweep and the CLI ask it."""
    packages = [*(p for p in FLOORS if p != "cli"), "scripts", *(["sandbox"] if (ROOT / "sandbox").is_dir() else [])]
    files = [ROOT / "cli.py", *(p for package in packages for p in sorted((ROOT / package).rglob("*.py")))]
    found = run_file_spellings(files)
    assert not found, "\n".join(found)


def test_the_run_file_scan_finds_a_spelling_in_code_not_in_a_docstring(tmp_path):
    """Guards the test above: a literal and an f-string's part are found, a docstring's mention is not."""
    module = tmp_path / "module.py"
    module.write_text('"""Reads state.json."""\n\n\ndef f(n):\n    """Its gen_XX folder."""\n'
                      '    return "results.jsonl", f"gen_{n:02d}"\n')
    assert run_file_spellings([module]) == [f"{module}:6 spells 'results.jsonl'", f"{module}:6 spells 'gen_'"]
