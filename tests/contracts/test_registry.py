"""The registry is complete: every plug-in class of the product packages and of examples/plugins has its fake, so
every one of them runs the contract suites."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

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
    assert concrete_subclasses(RealDataSource, ("datamodules",)) == {case.cls for case in DATASETS}


def test_every_generator_has_a_fake():
    assert concrete_subclasses(GeneratorModule, ("lightning_modules",)) == {case.cls for case in GENERATORS}


def test_every_filter_has_a_known_answer_case():
    assert concrete_subclasses(FilterStep, ("filters",)) == {case.cls for case in FILTERS}


def test_every_ablation_kind_has_a_known_answer_case():
    assert {case.name.removeprefix("ablation:") for case in METRICS if case.name.startswith("ablation:")} == \
        set(ABLATION_KINDS)
