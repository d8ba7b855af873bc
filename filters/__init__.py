"""Filter steps of generated samples: scorers (CLIP score, previous-classifier uncertainty) and selectors (manual
review, subgroup balance), and the chain that applies them to a block."""

from .base import FilterContext, FilterStep, Needs, Scorer, Selector
from .chain import filter_names, select_block, select_keep
from .clip_score import ClipScoreFilter
from .manual import ManualRejectFilter
from .subgroup_balance import SubgroupBalanceFilter
from .uncertainty import UncertaintyFilter

__all__ = [
    "ClipScoreFilter",
    "FilterContext",
    "FilterStep",
    "ManualRejectFilter",
    "Needs",
    "Scorer",
    "Selector",
    "SubgroupBalanceFilter",
    "UncertaintyFilter",
    "filter_names",
    "select_block",
    "select_keep",
]
