"""The registry is complete: every plug-in class of the product packages, of sandbox/ and of examples/plugins has its
fake, so every one of them runs the contract suites; an outside module of cases joins them."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from datamodules.base import RealDataSource
from filters import FilterStep
from lightning_modules.generator import GeneratorModule
from metrics.ablation import ABLATION_KINDS
from tests.contracts.registry import DATASETS, FILTERS, GENERATORS, METRICS, PLUGINS


def concrete_subclasses(base: type, packages: tuple[str, ...]) -> set[type]:
    """Every non-abstract subclass of ``base`` defined in a module of ``packages`` or of examples/plugins."""
    for package_name in packages:
        package = importlib.import_module(package_name)
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package_name}.{module.name}")
    for module in pkgutil.iter_modules([str(PLUGINS)]):
        importlib.import_module(module.name)
    found, todo = set(), [base]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            module = sub.__module__.split(".")[0]
            if not inspect.isabstract(sub) and (module in packages or sub.__module__ in {
                    m.name for m in pkgutil.iter_modules([str(PLUGINS)])}):
                found.add(sub)
    return found


def test_every_dataset_has_a_fake():
    assert concrete_subclasses(RealDataSource, ("datamodules", "sandbox")) == {case.cls for case in DATASETS}


def test_every_generator_has_a_fake():
    assert concrete_subclasses(GeneratorModule, ("lightning_modules", "sandbox")) == {case.cls for case in GENERATORS}


def test_every_filter_has_a_known_answer_case():
    assert concrete_subclasses(FilterStep, ("filters", "sandbox")) == {case.cls for case in FILTERS}


def test_every_ablation_kind_has_a_known_answer_case():
    assert {case.name.removeprefix("ablation:") for case in METRICS if case.name.startswith("ablation:")} == \
        set(ABLATION_KINDS)


def test_an_outside_module_of_cases_joins_the_registry(tmp_path, monkeypatch):
    """GENBIAS_CONTRACT_CASES names a module outside the repository; its cases join the lists the suites run."""
    from tests.contracts import registry

    (tmp_path / "my_cases.py").write_text(
        "from tests.contracts.registry import DatasetCase\n"
        "from coloured_squares import ColouredSquares\n"
        "DATASETS = [DatasetCase('my_squares', ColouredSquares, lambda tmp: ColouredSquares(eval_per_cell=1))]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(registry.CASES_VARIABLE, "my_cases, contract_cases")
    assert registry.outside_case_modules() == ["contract_cases", "my_cases"]
    monkeypatch.setattr(registry, "DATASETS", list(registry.DATASETS))
    registry.load_outside_cases(["my_cases"])
    assert registry.DATASETS[-1].name == "my_squares"
    monkeypatch.setenv(registry.CASES_VARIABLE, "no_such_cases")
    with pytest.raises(ImportError, match="GENBIAS_CONTRACT_CASES names 'no_such_cases', which cannot be imported"):
        registry.load_outside_cases(registry.outside_case_modules()[1:])
