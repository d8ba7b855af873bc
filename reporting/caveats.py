"""What the report knows and what it does not, said in one line each at the top of summary.md: the dataset's leading
fairness reading and the per-class one moving in opposite directions, unfinished runs, how many seeds back the
numbers, what the intervals are conditional on (the data seed), and which features the FID was computed on."""

from __future__ import annotations

import math
from dataclasses import dataclass

from records.layout import STATE_FILE
from reporting.chance import chance_caveats
from reporting.conjecture_summary import seeds_note
from reporting.readings import leading_reading
from reporting.runs import Group, file_stem
from reporting.statistics import Stat

#: a change smaller than this is "unchanged" (invisible at the 3 decimals the line prints)
MOVE_TOLERANCE = 5e-4
OVERVIEW_SUFFIX = "overview"
#: the MEO metric of each fairness reading, and the reading a leading one is checked against
READING_MEO = {"pooled": "meo", "per_class": "meo_class", "cells": "meo_cells"}
CHECKED_AGAINST = {"pooled": "per_class", "cells": "per_class", "per_class": "pooled"}
READING_WORDS = {"pooled": "pooled", "per_class": "per-class", "cells": "cells"}
READING_ADVICE = {
    "pooled": "Pooled metrics average subgroups over classes; read the per-class ones",
    "cells": "The cells reading treats every (class, subgroup) cell as a group, so a shift between classes moves it; "
             "the per-class reading compares subgroups within each class only; read both",
    "per_class": "Per-class metrics compare subgroups within each class only; the pooled ones also see a shift "
                 "between classes; read both",
}


def seed_phrase(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def fid_features_text(extractors: list[str]) -> str:
    """How to read the FID: which features it was computed on, and whether it compares to the paper's Table 1."""
    if not extractors:
        return f"feature extractor not recorded in {STATE_FILE}"
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
    """The MEO of the dataset's leading fairness reading and of the reading it is checked against (per class for
    pooled and cells, pooled for per class) moving in opposite directions from the first to the last generation, for
    one classifier (one reading can hide a shift that the other sees)."""

    group: str
    classifier: str
    first: int
    last: int
    lead: tuple[float, float]
    other: tuple[float, float]
    worst: tuple[float, float] | None
    reading: str = "pooled"

    @property
    def other_reading(self) -> str:
        return CHECKED_AGAINST[self.reading]

    def text(self) -> str:
        worst = "" if self.worst is None else f", and worst-subgroup accuracy {_verb(*self.worst)}"
        lead, other = READING_WORDS[self.reading], READING_WORDS[self.other_reading]
        return (f"**{self.group} / {self.classifier}: {lead} and {other} fairness disagree** (generation "
                f"{self.first} -> {self.last}): {lead} MEO {_verb(*self.lead)} while {other} MEO "
                f"{_verb(*self.other)}{worst}. {READING_ADVICE[self.reading]} "
                f"(`figures/{file_stem(self.group)}__{OVERVIEW_SUFFIX}.png` shows both).")


def _mean(stats: dict[tuple[str, int, str], Stat], classifier: str, generation: int, metric: str) -> float | None:
    stat = stats.get((classifier, generation, metric))
    return stat[0] if stat is not None and stat[2] > 0 and math.isfinite(stat[0]) else None


def fairness_disagreements(group: Group, stats: dict[tuple[str, int, str], Stat]) -> list[Disagreement]:
    """Every classifier whose MEO in the dataset's leading reading and in the reading it is checked against (seed
    means) move in opposite directions between the first and the last generation that have both."""
    reading = leading_reading(group.facts)
    lead_metric, other_metric = READING_MEO[reading], READING_MEO[CHECKED_AGAINST[reading]]
    found = []
    for classifier in group.classifiers:
        gens = [g for g in group.generations if _mean(stats, classifier, g, lead_metric) is not None
                and _mean(stats, classifier, g, other_metric) is not None]
        if len(gens) < 2:
            continue
        first, last = gens[0], gens[-1]
        lead = (stats[(classifier, first, lead_metric)][0], stats[(classifier, last, lead_metric)][0])
        other = (stats[(classifier, first, other_metric)][0], stats[(classifier, last, other_metric)][0])
        moves = [b - a for a, b in (lead, other)]
        if min(abs(m) for m in moves) < MOVE_TOLERANCE or moves[0] * moves[1] > 0:
            continue
        worst = [_mean(stats, classifier, g, "acc_rank_1") for g in (first, last)]
        found.append(Disagreement(group.name, classifier, first, last, lead, other,
                                  None if worst[0] is None or worst[1] is None else (worst[0], worst[1]), reading))
    return found


def conditional_line(group: Group) -> str:
    """What the group's intervals are conditional on: whether the data split, subsample and colour draw
    (``data.source.init_args.seed``) varied with the runs or were one draw for all of them."""
    seeds = [run.data_seed for run in group.runs]
    if all(seed is None for seed in seeds):
        return (f"- **{group.name}**: its intervals are over the runs' seeds; the configs record no data seed "
                "(`data.source.init_args.seed`), so whether the data split and subsample varied with them cannot be "
                "told.")
    distinct = list(dict.fromkeys(str(seed) for seed in seeds))
    if len(distinct) > 1:
        return (f"- **{group.name}**: the data seed (`data.source.init_args.seed`) varies over the runs "
                f"({', '.join(distinct)}), so its intervals include the variation of the data split, subsample and "
                "colour draw, not only of training.")
    return (f"- **{group.name}**: every interval is conditional on one draw of the data: the split, subsample, colour "
            f"draw and (where the source splits it) the test set come from `data.source.init_args.seed: "
            f"{distinct[0]}` in every run, so the seeds vary the training only. To vary the data too, give each run "
            "`--data.source.init_args.seed` equal to its `--seed_everything` (such runs still form one group).")


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
        note = seeds_note(len(group.runs))
        if note:
            lines.append(f"- **{group.name}**: {note}")
    for group in groups:
        lines.append(conditional_line(group))
    for group in fid_groups:
        lines.append(f"- **{group.name}** FID: {fid_features_text(group.fid_extractors)}.")
    return lines
