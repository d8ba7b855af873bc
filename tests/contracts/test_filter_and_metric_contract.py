"""Every registered filter scores each sample (float, one per sample, the same twice) with its known answer, and
every registered metric gives its known answer."""

from __future__ import annotations

import pytest
import torch

from tests.contracts.registry import FILTERS, METRICS, quiet


@pytest.mark.parametrize("case", FILTERS, ids=[case.cls.__name__ for case in FILTERS])
def test_a_filter_score_has_its_known_answer(case, tmp_path):
    filt = quiet(case.build, tmp_path)
    images, labels, context = case.inputs()
    scores = quiet(filt.score, images, labels, context)
    assert scores.shape == labels.shape and scores.dtype.is_floating_point
    case.check(filt, scores.cpu())
    assert torch.equal(quiet(filt.score, images, labels, context), scores)  # deterministic
    keep = filt.select(scores, labels)
    assert keep.dtype == torch.bool and keep.shape == labels.shape


@pytest.mark.parametrize("case", METRICS, ids=[case.name for case in METRICS])
def test_a_metric_has_its_known_answer(case):
    assert case.compute() == case.expected
