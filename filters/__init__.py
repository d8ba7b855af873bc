"""Quality filters for generated samples: CLIP score, previous-classifier uncertainty, manual review."""

from .base import FilterContext, SampleFilter, apply_filters, select_keep
from .clip_score import ClipScoreFilter
from .manual import ManualRejectFilter
from .uncertainty import UncertaintyFilter

__all__ = [
    "ClipScoreFilter",
    "FilterContext",
    "ManualRejectFilter",
    "SampleFilter",
    "UncertaintyFilter",
    "apply_filters",
    "select_keep",
]
