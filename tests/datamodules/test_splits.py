"""Seeded stratified splitting shared by the in-memory datasets."""

import torch

from datamodules.splits import rank_within_class, stratified_split, stratified_subsample


def test_stratified_split_function():
    labels = torch.arange(4).repeat_interleave(20)
    test, val, train = stratified_split(labels, [0.25, 0.1], torch.Generator().manual_seed(0))
    assert torch.bincount(labels[test]).tolist() == [5] * 4
    assert torch.bincount(labels[val]).tolist() == [2] * 4
    assert torch.bincount(labels[train]).tolist() == [13] * 4
    assert torch.equal(torch.sort(torch.cat([test, val, train])).values, torch.arange(80))


def test_stratified_subsample_keeps_class_shares():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    kept = stratified_subsample(labels, 50, torch.Generator().manual_seed(1))
    assert torch.bincount(labels[kept]).tolist() == [30, 15, 5]
    assert torch.equal(kept, kept.sort().values)


def test_rank_within_class_is_a_permutation_per_class():
    labels = torch.tensor([2, 0, 2, 1, 0, 2])
    rank = rank_within_class(labels, torch.Generator().manual_seed(0))
    for c in range(3):
        assert sorted(rank[labels == c].tolist()) == list(range(int((labels == c).sum())))
