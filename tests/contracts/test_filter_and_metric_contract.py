"""Every registered filter step has its known answer and the contract of its kind, and every registered metric gives
its known answer.

A scorer scores each sample (float, one per sample, the same twice) and the chain drops the bottom ``ratio`` of its
scores; a selector returns a keep mask (bool, one per sample, the same twice) and the chain keeps exactly that."""

from __future__ import annotations

import math

import pytest
import torch

from filters import Scorer, Selector, filter_names, select_block, select_keep
from tests.contracts.registry import FILTERS, METRICS, quiet


def output_of(step, images, labels, context) -> torch.Tensor:
    """A scorer's scores or a selector's keep mask of the inputs."""
    if isinstance(step, Scorer):
        return step.score(images, labels, context)
    return step.select(labels, context)


@pytest.mark.parametrize("case", FILTERS, ids=[case.cls.__name__ for case in FILTERS])
def test_a_filter_step_has_its_known_answer(case, tmp_path):
    step = quiet(case.build, tmp_path)
    assert isinstance(step, Scorer) != isinstance(step, Selector)  # exactly one kind
    images, labels, context = case.inputs()
    output = quiet(output_of, step, images, labels, context)
    assert output.shape == labels.shape
    if isinstance(step, Scorer):
        assert output.dtype.is_floating_point
    else:
        assert output.dtype == torch.bool
    case.check(step, output.cpu())
    assert torch.equal(quiet(output_of, step, images, labels, context), output)  # deterministic


@pytest.mark.parametrize("case", FILTERS, ids=[case.cls.__name__ for case in FILTERS])
def test_the_chain_applies_a_step_by_its_kind(case, tmp_path):
    """A scorer's bottom ratio is dropped (the highest ceil((1 - r) n_c) scores of each class kept); a selector's
    selection is kept exactly."""
    step = quiet(case.build, tmp_path)
    images, labels, context = case.inputs()
    output = quiet(output_of, step, images, labels, context).cpu()
    name = filter_names([step])[0]
    scores = {name: output.double()} if isinstance(step, Scorer) else {}
    keep, report = quiet(select_block, [step], scores, labels, context)
    if isinstance(step, Selector):
        assert torch.equal(keep, output)
    else:
        assert torch.equal(keep, select_keep(output, labels, step.ratio, step.per_class, step.mode))
        assert 0 < int(keep.sum()) < len(labels)  # the case's ratio drops something and keeps something
        if step.per_class and step.mode == "quantile":
            for c in labels.unique():
                members = labels == c
                kept, dropped = output[members & keep], output[members & ~keep]
                assert len(kept) == math.ceil(round((1 - step.ratio) * int(members.sum()), 9))
                assert dropped.numel() == 0 or kept.min() >= dropped.max()
    assert report["filters"][name]["kept"] == int(keep.sum())
    assert report["filter_kept"] == int(keep.sum())


@pytest.mark.parametrize("case", METRICS, ids=[case.name for case in METRICS])
def test_a_metric_has_its_known_answer(case):
    assert case.compute() == case.expected
