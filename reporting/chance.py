"""The report's near-chance warnings: a classifier within a few points of chance accuracy has learned nothing, and
its fairness numbers (MEO near 1) must not be read as "fair". Rows written before result rows recorded
``near_chance`` are judged from their accuracy and the dataset's number of classes."""

from __future__ import annotations

from metrics.chance import CHANCE_MARGIN, chance_accuracy, near_chance
from reporting.runs import Group


def _is_near_chance(row: dict, num_classes: int | None) -> bool:
    if "near_chance" in row:
        return bool(row["near_chance"])
    return num_classes is not None and near_chance(row.get("acc"), num_classes)


def near_chance_rows(group: Group, classifier: str | None = None) -> list[dict]:
    """The group's rows (of one classifier, or all) whose accuracy is within CHANCE_MARGIN of chance."""
    num_classes = group.facts.num_classes if group.facts is not None else None
    return [row for row in group.rows if (classifier is None or str(row["classifier"]) == classifier)
            and _is_near_chance(row, num_classes)]


def chance_note(group: Group, classifier: str) -> str | None:
    """One sentence naming the generations and seeds where ``classifier`` is near chance, or None."""
    rows = near_chance_rows(group, classifier)
    if not rows:
        return None
    num_classes = group.facts.num_classes if group.facts is not None else None
    chance = rows[0].get("chance_acc") or (chance_accuracy(num_classes) if num_classes else None)
    cells = ", ".join(f"generation {row['generation']} seed {row['seed']} acc {float(row['acc']):.3f}"
                      for row in sorted(rows, key=lambda r: (int(r["generation"]), int(r["seed"]))))
    level = f"chance {chance:.3f}" if chance is not None else "chance"
    return (f"{classifier} is within {CHANCE_MARGIN:.0%} of {level} ({cells}): it has not learned there, and its "
            "fairness numbers there describe a classifier equally bad for every subgroup, not a fair one")


def chance_caveats(groups: list[Group]) -> list[str]:
    """summary.md's bullet lines, one per (group, classifier) with a near-chance row."""
    return [f"- **Near chance** ({group.name}): {note}." for group in groups for classifier in group.classifiers
            if (note := chance_note(group, classifier))]
