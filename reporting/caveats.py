"""What the report knows and what it does not, said in one line each at the top of summary.md: pooled and
per-class fairness moving in opposite directions, unfinished runs, how many seeds back the numbers, and which
features the FID was computed on."""

from __future__ import annotations

import math
from dataclasses import dataclass

from reporting.chance import chance_caveats
from reporting.conjecture_summary import resample_note
from reporting.runs import Group, file_stem
from reporting.statistics import Stat

#: a change smaller than this is "unchanged" (invisible at the 3 decimals the line prints)
MOVE_TOLERANCE = 5e-4
OVERVIEW_SUFFIX = "overview"


def seed_phrase(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def fid_features_text(extractors: list[str]) -> str:
    """How to read the FID: which features it was computed on, and whether it compares to the paper's Table 1."""
    if not extractors:
        return "feature extractor not recorded in state.json"
    texts = []
    for extractor in extractors:
        if extractor.startswith("classifier:"):
            texts.append(f"classifier features ({extractor.split(':', 1)[1]}), not Inception: not comparable to the "
                         "paper's Table 1")
        elif extractor.startswith("inception"):
            texts.append("Inception-V3 features, as in the paper's Table 1")
        else:
            texts.append(extractor)
    if len(texts) > 1:
        return "mixed feature extractors, so the values are not comparable with each other: " + "; ".join(texts)
    return texts[0]


def _verb(before: float, after: float) -> str:
    if abs(after - before) < MOVE_TOLERANCE:
        return f"stays at {before:.3f}"
    return f"{'rises' if after > before else 'falls'} {before:.3f} -> {after:.3f}"


@dataclass
class Disagreement:
    """Pooled and per-class MEO of one classifier moving in opposite directions from the first to the last
    generation (pooled metrics average subgroups over classes and can hide a shift within classes)."""

    group: str
    classifier: str
    first: int
    last: int
    pooled: tuple[float, float]
    per_class: tuple[float, float]
    worst: tuple[float, float] | None

    def text(self) -> str:
        worst = "" if self.worst is None else f", and worst-subgroup accuracy {_verb(*self.worst)}"
        return (f"**{self.group} / {self.classifier}: pooled and per-class fairness disagree** (generation "
                f"{self.first} -> {self.last}): pooled MEO {_verb(*self.pooled)} while per-class MEO "
                f"{_verb(*self.per_class)}{worst}. Pooled metrics average subgroups over classes; read the per-class "
                f"ones (`figures/{file_stem(self.group)}__{OVERVIEW_SUFFIX}.png` shows both).")


def _mean(stats: dict[tuple[str, int, str], Stat], classifier: str, generation: int, metric: str) -> float | None:
    stat = stats.get((classifier, generation, metric))
    return stat[0] if stat is not None and stat[2] > 0 and math.isfinite(stat[0]) else None


def fairness_disagreements(group: Group, stats: dict[tuple[str, int, str], Stat]) -> list[Disagreement]:
    """Every classifier whose pooled and per-class MEO (seed means) move in opposite directions between the first
    and the last generation that have both."""
    found = []
    for classifier in group.classifiers:
        gens = [g for g in group.generations if _mean(stats, classifier, g, "meo") is not None
                and _mean(stats, classifier, g, "meo_class") is not None]
        if len(gens) < 2:
            continue
        first, last = gens[0], gens[-1]
        pooled = (stats[(classifier, first, "meo")][0], stats[(classifier, last, "meo")][0])
        per_class = (stats[(classifier, first, "meo_class")][0], stats[(classifier, last, "meo_class")][0])
        moves = [b - a for a, b in (pooled, per_class)]
        if min(abs(m) for m in moves) < MOVE_TOLERANCE or moves[0] * moves[1] > 0:
            continue
        worst = [_mean(stats, classifier, g, "acc_rank_1") for g in (first, last)]
        found.append(Disagreement(group.name, classifier, first, last, pooled, per_class,
                                  None if worst[0] is None or worst[1] is None else (worst[0], worst[1])))
    return found


def caveat_lines(groups: list[Group], stats_by_group: dict[str, dict], fid_groups: list[Group]) -> list[str]:
    """The bullet lines of summary.md's "What this report can and cannot tell" section."""
    lines: list[str] = []
    for group in groups:
        for disagreement in fairness_disagreements(group, stats_by_group[group.name]):
            lines.append(f"- {disagreement.text()}")
    lines += chance_caveats(groups)
    for group in groups:
        for run in group.unfinished:
            lines.append(f"- **Unfinished run** `{run.path}` ({group.name}): {run.progress}; its numbers cover only "
                         "those generations (re-run the same `cli.py fit` command to finish it).")
    for group in groups:
        note = resample_note(len(group.runs))
        if note:
            lines.append(f"- **{group.name}**: {note}")
    for group in fid_groups:
        lines.append(f"- **{group.name}** FID: {fid_features_text(group.fid_extractors)}.")
    return lines
