"""Quality filters for generated samples: CLIP score, previous-classifier uncertainty, manual review."""

from .base import FilterContext, SampleFilter, filter_names, select_block, select_keep
from .clip_score import ClipScoreFilter
from .manual import ManualRejectFilter
from .uncertainty import UncertaintyFilter

__all__ = [
    "ClipScoreFilter",
    "FilterContext",
    "ManualRejectFilter",
    "SampleFilter",
    "UncertaintyFilter",
    "filter_names",
    "select_block",
    "select_keep",
]
