"""metrics/chance.py: chance level and the near-chance flag."""

from __future__ import annotations

import pytest

from metrics.chance import CHANCE_MARGIN, chance_accuracy, near_chance


def test_chance_is_uniform_guessing():
    assert chance_accuracy(10) == pytest.approx(0.1) and chance_accuracy(2) == pytest.approx(0.5)
    assert chance_accuracy(1) is None and chance_accuracy(0) is None


@pytest.mark.parametrize(("acc", "classes", "flagged"), [
    (0.10, 10, True), (0.0, 10, True), (0.149, 10, True), (0.15, 10, False), (0.95, 10, False),
    (0.54, 2, True), (0.56, 2, False), (None, 10, False), (0.0, 1, False),
])
def test_near_chance_is_below_chance_plus_the_margin(acc, classes, flagged):
    assert CHANCE_MARGIN == 0.05
    assert near_chance(acc, classes) is flagged
