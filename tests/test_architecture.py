"""The floor plan holds: no package imports from a floor above it, and the packages form no import cycle."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: package -> floor (docs/architecture.md); a package may import only from its own floor or below
FLOORS = {"common": 0, "metrics": 1, "filters": 1, "datamodules": 1, "lightning_modules": 1, "callbacks": 2,
          "simulation": 3, "reporting": 4, "cli": 5, "sandbox": 4}


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
    """A plug-in states its facts in its own module (and its configs): no list of datasets or generators elsewhere."""
    found = name_mentions(product_files(), plugin_owners())
    assert not found, "\n".join(found)


def test_the_name_checker_finds_a_mention_outside_the_owner_only(tmp_path):
    """Guards the test above: a whole-word mention elsewhere is found, the owner's own and a longer name are not."""
    owners = plugin_owners()
    elsewhere = tmp_path / "results.py"
    elsewhere.write_text('PER_CLASS = ("cifar20", "breeds_living17x")\n')
    assert name_mentions([elsewhere, owners["CIFAR20"]], owners) == [f"{elsewhere} names cifar20"]
