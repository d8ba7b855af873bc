"""The fakes of the plug-ins in this folder, for the contract suites of tests/contracts.

A plug-in written outside the repository brings such a module: it builds each plug-in small and offline, and the
suites run it like the product's own (``GENBIAS_CONTRACT_CASES=contract_cases PYTHONPATH=examples/plugins pytest
tests/contracts``; this one is always loaded). See docs/extending.md.
"""

from __future__ import annotations

from class_mean_generator import ClassMeanGenerator
from coloured_squares import ColouredSquares

from tests.contracts.registry import DatasetCase, GeneratorCase

DATASETS = [DatasetCase("coloured_squares", ColouredSquares, lambda tmp: ColouredSquares(eval_per_cell=2))]
GENERATORS = [GeneratorCase(ClassMeanGenerator, lambda tmp: ClassMeanGenerator(num_classes=3, image_shape=(3, 8, 8)),
                            3)]
