"""q_t, u_t and majority_gain on hand-made blocks with known answers (paper section 5)."""

import pytest
import torch
from torch import nn

from metrics.block_statistics import imbalance_u, majority_gain, quality_q, subgroup_counts

L, G = 10, 3


def real_counts_biased() -> torch.Tensor:
    """Every digit 80 red / 15 green / 5 blue: the default biased Colorized MNIST."""
    labels = torch.arange(L).repeat_interleave(100)
    groups = torch.tensor([0] * 80 + [1] * 15 + [2] * 5).repeat(L)
    return subgroup_counts(labels, groups, L, G)


def block(per_class: list[int], n_per_class: int = 30) -> torch.Tensor:
    """Counts of a block with ``per_class[g]`` samples of subgroup g in every class."""
    labels = torch.arange(L).repeat_interleave(sum(per_class))
    groups = torch.cat([torch.full((n,), g) for g, n in enumerate(per_class)]).repeat(L)
    return subgroup_counts(labels, groups, L, G)


def test_subgroup_counts_skip_unknown_subgroups():
    counts = subgroup_counts(torch.tensor([0, 0, 1, 1]), torch.tensor([2, -1, 0, 0]), 2, 3)
    assert counts.tolist() == [[0, 0, 1], [2, 0, 0]]


def test_majority_only_block_amplifies_the_bias():
    real = real_counts_biased()
    majority_only = block([30, 0, 0])
    assert imbalance_u(majority_only, real) == pytest.approx(0.2)
    assert majority_gain(majority_only, real) == pytest.approx(0.2)


def test_uniform_block_evens_the_subgroups_out():
    real = real_counts_biased()
    uniform = block([10, 10, 10])
    assert imbalance_u(uniform, real) == pytest.approx(0.5 * ((0.8 - 1 / 3) + (1 / 3 - 0.15) + (1 / 3 - 0.05)))
    assert majority_gain(uniform, real) == pytest.approx(1 / 3 - 0.8)
    assert majority_gain(uniform, real) < 0


def test_a_block_with_the_real_mix_is_balanced():
    real = real_counts_biased()
    assert imbalance_u(block([16, 3, 1]), real) == pytest.approx(0.0)
    assert majority_gain(block([16, 3, 1]), real) == pytest.approx(0.0)


def test_classes_are_weighted_by_their_block_counts_and_compared_within_class():
    # class 0's majority is subgroup 0, class 1's is subgroup 1: a pooled histogram would call this block balanced
    real = torch.tensor([[9, 1], [1, 9]])
    generated = torch.tensor([[30, 0], [0, 10]])  # both classes over-produce their majority
    assert imbalance_u(generated, real) == pytest.approx(0.1)
    assert majority_gain(generated, real) == pytest.approx(0.1)
    skewed = torch.tensor([[30, 0], [5, 5]])  # class 0 (weight 3/4) +0.1, class 1 (weight 1/4) -0.4
    assert majority_gain(skewed, real) == pytest.approx(0.75 * 0.1 + 0.25 * -0.4)
    assert imbalance_u(skewed, real) == pytest.approx(0.75 * 0.1 + 0.25 * 0.4)


def test_no_known_subgroup_gives_none():
    assert imbalance_u(torch.zeros(2, 2, dtype=torch.long), torch.ones(2, 2, dtype=torch.long)) is None
    assert majority_gain(torch.ones(2, 2, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long)) is None


class ReadsTheFirstPixel(nn.Module):
    """A fixed classifier: the class is the value of the image's first pixel."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(images[:, 0, 0, 0].long(), L).float()


def test_quality_q_is_one_for_a_recognised_block_and_zero_for_a_missed_one():
    classifier = ReadsTheFirstPixel()
    labels = torch.arange(20) % L
    images = labels.view(-1, 1, 1, 1).repeat(1, 1, 4, 4).to(torch.uint8)
    predicted = classifier(images).argmax(1)
    assert quality_q(predicted, labels) == 1.0
    assert quality_q(predicted, (labels + 1) % L) == 0.0
    assert quality_q(predicted, torch.where(labels < 5, labels, (labels + 1) % L)) == 0.5
    assert quality_q(predicted[:0], labels[:0]) is None
