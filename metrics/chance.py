"""Chance level: a classifier that has not learned (uniform guessing over L classes, 1/L accuracy) predicts every
subgroup equally badly, so its fairness metrics read as "fair" (MEO near 1). A classifier within
``CHANCE_MARGIN`` of chance is flagged wherever its fairness numbers are shown."""

from __future__ import annotations

#: how close to chance (in accuracy, 0.05 = 5 points) a classifier is flagged
CHANCE_MARGIN = 0.05


def chance_accuracy(num_classes: int) -> float | None:
    """The accuracy of guessing uniformly over ``num_classes`` classes (None below 2 classes)."""
    return 1.0 / num_classes if num_classes >= 2 else None


def near_chance(acc: float | None, num_classes: int) -> bool:
    """Whether ``acc`` is below chance + CHANCE_MARGIN (or at or under chance)."""
    chance = chance_accuracy(num_classes)
    return acc is not None and chance is not None and acc < round(chance + CHANCE_MARGIN, 12)  # 0.1 + 0.05 > 0.15
