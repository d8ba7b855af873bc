"""The in-loop mitigation: per class, the largest subset of the block with the target subgroup mix."""

import pytest
import torch

from common.errors import ConfigError
from filters import FilterContext, SubgroupBalanceFilter, select_block
from filters.subgroup_balance import balanced_counts, balanced_subset

REAL = torch.tensor([[80, 15, 5], [10, 10, 80]])  # class 0: red-heavy; class 1: blue-heavy


def block(per_class: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels and subgroups of a block with ``per_class[c][g]`` samples of (class c, subgroup g), interleaved."""
    labels, groups = [], []
    for c, counts in enumerate(per_class):
        for g, n in enumerate(counts):
            labels += [c] * n
            groups += [g] * n
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    return torch.tensor(labels)[order], torch.tensor(groups)[order]


def kept_counts(labels, groups, keep) -> torch.Tensor:
    return torch.stack([torch.bincount(groups[keep & (labels == c)], minlength=3) for c in range(2)])


def test_a_block_skewed_to_the_majority_comes_out_with_the_real_mix_within_one_sample_per_cell():
    labels, groups = block([[90, 8, 2], [5, 30, 40]])  # class 0 over-produces red, class 1 under-produces blue
    keep = balanced_subset(labels, groups, REAL.double())
    counts = kept_counts(labels, groups, keep)
    for c in range(2):
        exact = REAL[c].double() / REAL[c].sum() * counts[c].sum()
        assert (counts[c].double() - exact).abs().max() < 1.0, (c, counts[c], exact)
    assert counts.tolist() == [[32, 6, 2], [5, 5, 40]]  # the largest such subsets: 40 and 50 samples
    # a rare subgroup keeps its sample (rounded, not floored away): 9 red + 1 green against 34 : 3 : 3
    assert balanced_counts(torch.tensor([9, 1, 0]), torch.tensor([34, 3, 3])).tolist() == [9, 1, 0]


def test_uniform_target_evens_the_subgroups_out():
    labels, groups = block([[80, 15, 5], [10, 10, 80]])
    keep = balanced_subset(labels, groups, torch.ones(2, 3))
    assert kept_counts(labels, groups, keep).tolist() == [[5, 5, 5], [10, 10, 10]]


def test_counts_are_the_most_the_target_allows():
    assert balanced_counts(torch.tensor([50, 30, 20]), torch.tensor([0.8, 0.15, 0.05])).tolist() == [50, 9, 3]
    assert balanced_counts(torch.tensor([50, 30, 20]), torch.tensor([1.0, 1.0, 1.0])).tolist() == [20, 20, 20]
    # a subgroup the generator did not produce: the target mix among the others (0.8 : 0.05 = 16 : 1)
    assert balanced_counts(torch.tensor([50, 0, 20]), torch.tensor([0.8, 0.15, 0.05])).tolist() == [50, 0, 3]
    assert balanced_counts(torch.tensor([0, 0, 0]), torch.tensor([0.8, 0.15, 0.05])).tolist() == [0, 0, 0]
    assert balanced_counts(torch.tensor([7, 3, 9]), torch.tensor([1.0, 0.0, 1.0])).tolist() == [7, 0, 7]


def test_through_the_selection_unknown_subgroups_are_dropped_and_the_mix_still_holds():
    labels, groups = block([[90, 8, 2], [5, 30, 40]])
    groups = groups.clone()
    groups[:3] = -1  # three samples whose subgroup could not be read
    context = FilterContext(generation=1, class_names=["a", "b"], sample_ids=torch.arange(len(labels)),
                            subgroups=groups, real_subgroup_counts=REAL)
    keep, report = select_block([SubgroupBalanceFilter("real")], {}, labels, context)
    assert not keep[:3].any()
    assert report["filters"]["subgroup_balance"]["kept"] == int(keep.sum()) > 0
    counts = kept_counts(labels, groups, keep)
    for c in range(2):
        exact = REAL[c].double() / REAL[c].sum() * counts[c].sum()
        assert (counts[c].double() - exact).abs().max() < 1.0


def test_bad_target_and_missing_subgroups_are_config_errors():
    with pytest.raises(ConfigError, match="target must be one of"):
        SubgroupBalanceFilter("equal")
    labels = torch.zeros(4, dtype=torch.long)
    context = FilterContext(generation=1, class_names=["a"], sample_ids=torch.arange(4))
    with pytest.raises(ConfigError, match="needs the subgroup"):
        SubgroupBalanceFilter().select(labels, context)
