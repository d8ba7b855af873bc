"""A dataset's card: the facts the loop, the validation and the report read about it, stated once by the dataset.

Nothing outside a dataset's own module names the dataset: the CLI's help, the result rows, the report's wording, the
choice of the subgroup oracle and the validation all read its ``DatasetFacts``. The run directory records the card
(``state.json``), so the report reads it without importing the dataset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from common.image_views import ImageView

#: what a subgroup is: read from any image's pixels (Colorized MNIST's stroke colour), given with the real data and
#: meaning the same thing in every class (an attribute), given with the real data and meaning a different thing in
#: every class (CIFAR-20's fine classes, BREEDS subclasses), or none (Hard ImageNet)
SubgroupKind = Literal["pixels", "given", "per_class", "none"]
#: the fairness reading a dataset's report leads with
FairnessReading = Literal["pooled", "per_class", "cells"]
SUBGROUP_KINDS: tuple[str, ...] = ("pixels", "given", "per_class", "none")
FAIRNESS_READINGS: tuple[str, ...] = ("pooled", "per_class", "cells")
#: card fields an earlier release recorded in ``state.json`` and nothing read, dropped when an old card is read
RETIRED_FIELDS: tuple[str, ...] = ("subgroup_members",)


@dataclass(frozen=True)
class DatasetFacts:
    """What is true of a dataset whatever runs on it.

    Args:
        name: the dataset's name in result rows and reports (``dataset`` of a row).
        class_names: one name per label, in label order.
        image_shape: (C, H, W) of the uint8 images the classifiers see (its native resolution after its view).
        classifier_view: how the classifiers see an image (the identity on the in-memory datasets' own images).
        group_names: one name per subgroup index; empty without subgroups.
        subgroups: what a subgroup is (``SubgroupKind``); decides which oracle u_t needs (``oracle``).
        subgroup_noun: what the report calls a subgroup ("colour", "fine class", "subclass", "attribute").
        has_masks: samples carry object masks, so the loop runs the spurious-cue ablations at test time.
        fairness_reading: the fairness reading the report leads with (``FairnessReading``).
    """

    name: str
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    classifier_view: ImageView
    group_names: tuple[str, ...] = ()
    subgroups: SubgroupKind = "none"
    subgroup_noun: str = "subgroup"
    has_masks: bool = False
    fairness_reading: FairnessReading = "pooled"

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        object.__setattr__(self, "group_names", tuple(str(n) for n in self.group_names))
        object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))
        problems = self.problems()
        if problems:
            raise ValueError(f"dataset card of {self.name!r}: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """What makes this card inconsistent (empty when it is sound)."""
        problems = []
        if not self.name:
            problems.append("name is empty")
        if not self.class_names:
            problems.append("class_names is empty")
        if self.subgroups not in SUBGROUP_KINDS:
            problems.append(f"subgroups must be one of {list(SUBGROUP_KINDS)}, got {self.subgroups!r}")
        if self.fairness_reading not in FAIRNESS_READINGS:
            problems.append(f"fairness_reading must be one of {list(FAIRNESS_READINGS)}, got {self.fairness_reading!r}")
        if (self.subgroups == "none") != (not self.group_names):
            problems.append(f"subgroups={self.subgroups!r} but {len(self.group_names)} group_names")
        if len(self.image_shape) != 3 or min(self.image_shape, default=0) < 1:
            problems.append(f"image_shape must be (C, H, W), got {list(self.image_shape)}")
        return problems

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_groups(self) -> int:
        """Number of subgroups G (0 when the dataset has no known subgroups)."""
        return len(self.group_names)

    @property
    def oracle(self) -> Literal["pixels", "learned"] | None:
        """What reads the subgroup of a generated image for u_t: the dataset's pixels
        (``RealDataSource.subgroups_from_pixels``), a learned oracle (``quality.oracle``), or nothing."""
        return {"pixels": "pixels", "given": "learned", "per_class": "learned"}.get(self.subgroups)

    @property
    def per_class_subgroups(self) -> bool:
        """Subgroup i is a different thing in every class: pooled subgroup metrics mix unrelated subgroups, so the
        per-class metrics come first."""
        return self.subgroups == "per_class"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> DatasetFacts:
        data = {key: value for key, value in data.items() if key not in RETIRED_FIELDS}
        data["classifier_view"] = ImageView(**data["classifier_view"])
        return cls(**data)
