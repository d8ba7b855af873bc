"""Filters of generated samples: CLIP score, previous-classifier uncertainty, manual review, subgroup balance."""

from .base import FilterContext, SampleFilter, filter_names, select_block, select_keep
from .clip_score import ClipScoreFilter
from .manual import ManualRejectFilter
from .subgroup_balance import SubgroupBalanceFilter
from .uncertainty import UncertaintyFilter

__all__ = [
    "ClipScoreFilter",
    "FilterContext",
    "ManualRejectFilter",
    "SampleFilter",
    "SubgroupBalanceFilter",
    "UncertaintyFilter",
    "filter_names",
    "select_block",
    "select_keep",
]
