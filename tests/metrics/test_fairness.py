"""Fairness metrics against hand-worked examples; the Metric equals the function, also when split like DDP."""

from __future__ import annotations

import pytest
import torch

from common.errors import ConfigError
from metrics.fairness import metrics_from_counts, reading_metrics, subgroup_metrics
from metrics.subgroup_fairness_metric import SubgroupFairness

SCALARS = ("acc", "meo", "di", "md", "meo_class", "di_class", "md_class")


def make_batch(cells: list[tuple[int, int, int, int]], num_classes: int) -> tuple[torch.Tensor, ...]:
    """Samples from a table of (class, subgroup, n_samples, n_correct); a wrong prediction is the next class."""
    preds, target, groups = [], [], []
    for cls, group, n, n_correct in cells:
        target += [cls] * n
        groups += [group] * n
        preds += [cls] * n_correct + [(cls + 1) % num_classes] * (n - n_correct)
    return torch.tensor(preds), torch.tensor(target), torch.tensor(groups)


def both_forms(preds, target, groups, num_classes, num_groups) -> list[dict[str, torch.Tensor]]:
    """The pure function, and the Metric fed the same samples in two uneven batches."""
    metric = SubgroupFairness(num_classes, num_groups)
    cut = len(target) // 3
    metric.update(preds[:cut], target[:cut], groups[:cut])
    metric.update(preds[cut:], target[cut:], groups[cut:])
    return [subgroup_metrics(preds, target, groups, num_classes, num_groups), metric.compute()]


def assert_metrics(result: dict[str, torch.Tensor], **expected) -> None:
    for key, value in expected.items():
        value = torch.as_tensor(value, dtype=result[key].dtype)
        torch.testing.assert_close(result[key], value, equal_nan=True, msg=f"{key}: {result[key]} != {value}")


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], equal_nan=True, msg=f"{key} differs")


def test_perfectly_fair_model():
    # every (class, subgroup) cell: 2 samples, 1 correct -> every accuracy 0.5, no disparity anywhere
    preds, target, groups = make_batch([(c, g, 2, 1) for c in range(2) for g in range(3)], num_classes=2)
    for result in both_forms(preds, target, groups, 2, 3):
        assert_metrics(
            result, acc=0.5, meo=1.0, di=1.0, md=0.0, meo_class=1.0, di_class=1.0, md_class=0.0,
            acc_rank=[0.5, 0.5, 0.5], group_tpr=[0.5, 0.5, 0.5], group_acc=torch.full((2, 3), 0.5),
            group_count=torch.full((2, 3), 2, dtype=torch.long),
        )  # fmt: skip


def test_hand_worked_biased_model():
    # (class, subgroup, samples, correct):  class 0: 4/4, 2/4, 0/2   class 1: 1/2, 4/4, 1/2
    cells = [(0, 0, 4, 4), (0, 1, 4, 2), (0, 2, 2, 0), (1, 0, 2, 1), (1, 1, 4, 4), (1, 2, 2, 1)]
    preds, target, groups = make_batch(cells, num_classes=2)
    # TPR: g0 = 5/6, g1 = 6/8 = 3/4, g2 = 1/4
    # MEO = 1 - (|5/6-3/4| + |5/6-1/4| + |3/4-1/4|)/3 = 1 - (1/12 + 7/12 + 6/12)/3 = 1 - 14/36 = 11/18
    # DI: ratios 0.9, 0.3, 1/3 -> 1 - (0.1 + 0.7 + 2/3)/3 = 1 - 22/45 = 23/45;  MD = 5/6 - 1/4 = 7/12
    # acc = (4+2+0+1+4+1)/18 = 2/3;  acc_rank: sorted rows [0, .5, 1] and [.5, .5, 1] -> [.25, .5, 1]
    # class 0 [1, .5, 0]: MEO 1-(.5+1+.5)/3 = 1/3, DI 1-(.5+1+1)/3 = 1/6, MD 1
    # class 1 [.5, 1, .5]: MEO 1-(.5+0+.5)/3 = 2/3, DI 1-(.5+0+.5)/3 = 2/3, MD .5
    # averages: meo_class = 1/2, di_class = (1/6 + 2/3)/2 = 5/12, md_class = 3/4
    for result in both_forms(preds, target, groups, 2, 3):
        assert_metrics(
            result, acc=2 / 3, meo=11 / 18, di=23 / 45, md=7 / 12, acc_rank=[0.25, 0.5, 1.0],
            meo_class=0.5, di_class=5 / 12, md_class=0.75, group_tpr=[5 / 6, 0.75, 0.25],
            group_acc=[[1.0, 0.5, 0.0], [0.5, 1.0, 0.5]], group_count=torch.tensor([[4, 4, 2], [2, 4, 2]]),
        )  # fmt: skip


def test_printed_forms_of_eqs_2_and_3_for_two_subgroups():
    # one class, TPR 0.9 (9/10) and 0.8 (8/10); C(2,2) = 1 pair
    preds, target, groups = make_batch([(0, 0, 10, 9), (0, 1, 10, 8)], num_classes=2)
    # bounded: MEO = 1 - 0.1 = 0.9, DI = 1 - (1 - 0.8/0.9) = 0.8889
    # printed eq. 2, ordered pairs over C(2,2): 1 - (|.9-.8| + |.8-.9|)/1 = 0.8 (= 1 - 2 * 0.1)
    # printed eq. 3: 1 - (|0.9/0.8 - 1| + |0.8/0.9 - 1|)/1 = 1 - 0.125 - 0.1111 = 0.7639 (one order alone: 0.875 or
    # 0.8889, so a swapped or dropped pair fails)
    printed_di = 1 - (0.9 / 0.8 - 1) - (1 - 0.8 / 0.9)
    for result in both_forms(preds, target, groups, 2, 2):
        assert_metrics(result, meo=0.9, di=0.8 / 0.9, md=0.1, meo_eq2=0.8, di_eq3=printed_di)
        assert float(result["di_eq3"]) == pytest.approx(0.7639, abs=1e-4)
        for suffix in ("_class", "_cells"):  # one class: every reading sees the same two rates
            assert_metrics(result, **{f"meo_eq2{suffix}": 0.8, f"di_eq3{suffix}": printed_di})


def test_printed_di_sums_both_orders_of_every_pair():
    # TPR [1, 1/2, 1/4]; pairs (ratio high/low - 1, 1 - low/high): (1, 1/2): 1 + 1/2; (1, 1/4): 3 + 3/4;
    # (1/2, 1/4): 1 + 1/2 -> sum 6.75 over C(3,2) = 3 -> DI_eq3 = 1 - 6.75/3 = -5/4 (below 0: unbounded)
    # MEO gaps 1/2, 3/4, 1/4 -> mean 1/2: MEO = 1/2, MEO_eq2 = 1 - 2 * 1/2 = 0
    preds, target, groups = make_batch([(0, 0, 4, 4), (0, 1, 4, 2), (0, 2, 4, 1)], num_classes=2)
    for result in both_forms(preds, target, groups, 2, 3):
        assert_metrics(result, meo=0.5, meo_eq2=0.0, di_eq3=-5 / 4, di=1 - (0.5 + 0.75 + 0.5) / 3)


def test_cells_reading_over_every_class_subgroup_cell():
    # the hand-worked biased model below: acc = [[1, .5, 0], [.5, 1, .5]] -> 6 cells, C(6,2) = 15 pairs
    cells = [(0, 0, 4, 4), (0, 1, 4, 2), (0, 2, 2, 0), (1, 0, 2, 1), (1, 1, 4, 4), (1, 2, 2, 1)]
    preds, target, groups = make_batch(cells, num_classes=2)
    # values {0, .5, .5, .5, 1, 1}; gaps: 0-.5 x3 = 1.5, 0-1 x2 = 2, .5-1 x6 = 3 -> 6.5; MEO = 1 - 6.5/15 = 17/30
    # DI losses: 0-.5 x3 = 3, 0-1 x2 = 2, .5-1 x6 (1 - .5) = 3 -> 8; DI = 7/15; MD = 1; MEO_eq2 = 1 - 13/15 = 2/15
    # DI_eq3: the 0-accuracy cell against a positive one is x/0 = inf -> -inf
    for result in both_forms(preds, target, groups, 2, 3):
        assert_metrics(result, meo_cells=17 / 30, di_cells=7 / 15, md_cells=1.0, meo_eq2_cells=2 / 15,
                       di_eq3_cells=float("-inf"))
        # the pooled reading of the same model differs (TPR 5/6, 3/4, 1/4): the readings are not interchangeable
        assert_metrics(result, meo=11 / 18)


def test_readings_from_group_acc_alone_equal_those_from_the_counts():
    # what the report recomputes for a row written before the cells reading existed: only group_acc is stored
    cells = [(0, 0, 4, 3), (0, 1, 4, 2), (1, 0, 2, 1), (1, 1, 4, 4), (1, 2, 2, 1), (2, 2, 5, 5)]
    preds, target, groups = make_batch(cells, num_classes=3)
    full = subgroup_metrics(preds, target, groups, 3, 3)
    derived = reading_metrics(full["group_acc"])
    assert set(derived) == {f"{m}{s}" for m in ("meo", "di", "md", "meo_eq2", "di_eq3") for s in ("_class", "_cells")}
    for key, value in derived.items():
        torch.testing.assert_close(value, full[key], msg=key)
    # class 2 has one present subgroup: the per-class average is over classes 0 and 1 only
    # class 0 [.75, .5]: MEO .75; class 1 [.5, 1, .5]: MEO 1 - (.5 + 0 + .5)/3 = 2/3 -> (3/4 + 2/3)/2 = 17/24
    assert float(derived["meo_class"]) == pytest.approx(17 / 24)


def test_subgroup_with_zero_accuracy():
    # one class, TPR = [1, 1/2, 0]
    preds, target, groups = make_batch([(0, 0, 2, 2), (0, 1, 2, 1), (0, 2, 2, 0)], num_classes=2)
    # MEO = 1 - (.5 + 1 + .5)/3 = 1/3;  DI: ratios .5, 0/1 = 0, 0/.5 = 0 -> 1 - (.5 + 1 + 1)/3 = 1/6;  MD = 1
    # acc = 3/6;  only class 0 is present, so the class averages equal the global values
    for result in both_forms(preds, target, groups, 2, 3):
        assert_metrics(
            result, acc=0.5, meo=1 / 3, di=1 / 6, md=1.0, meo_class=1 / 3, di_class=1 / 6, md_class=1.0,
            acc_rank=[0.0, 0.5, 1.0],
        )  # fmt: skip


def test_zero_over_zero_pair_counts_as_equal():
    # TPR = [0, 0, 1/2]
    preds, target, groups = make_batch([(0, 0, 2, 0), (0, 1, 2, 0), (0, 2, 2, 1)], num_classes=2)
    # DI: pair (0,1) is 0/0 -> ratio 1, loss 0; pairs (0,2), (1,2): ratio 0, loss 1 -> 1 - 2/3 = 1/3
    # MEO = 1 - (0 + .5 + .5)/3 = 2/3;  MD = .5
    for result in both_forms(preds, target, groups, 2, 3):
        assert_metrics(result, acc=1 / 6, meo=2 / 3, di=1 / 3, md=0.5, di_class=1 / 3)
    # a model wrong everywhere is unfair to no one: every pair is 0/0
    preds, target, groups = make_batch([(0, 0, 2, 0), (0, 1, 3, 0), (1, 2, 1, 0)], num_classes=2)
    for result in both_forms(preds, target, groups, 2, 3):
        assert_metrics(result, acc=0.0, meo=1.0, di=1.0, md=0.0, di_class=1.0, meo_class=1.0)


def test_subgroup_missing_from_one_class_excludes_that_class_from_rank():
    # class 0: 2/2, 1/2, 0/2 (complete); class 1: 1/2, 2/2, subgroup 2 absent
    cells = [(0, 0, 2, 2), (0, 1, 2, 1), (0, 2, 2, 0), (1, 0, 2, 1), (1, 1, 2, 2)]
    preds, target, groups = make_batch(cells, num_classes=2)
    # acc_rank from class 0 only: sorted [0, .5, 1]
    # TPR: g0 = 3/4, g1 = 3/4, g2 = 0 -> MEO = 1 - (0 + .75 + .75)/3 = 1/2;  DI = 1 - (0 + 1 + 1)/3 = 1/3;  MD = 3/4
    # class 0 [1, .5, 0]: MEO 1/3, DI 1/6, MD 1;  class 1 over its present pair [.5, 1]: MEO 1/2, DI 1/2, MD 1/2
    # averages: meo_class = (1/3 + 1/2)/2 = 5/12, di_class = (1/6 + 1/2)/2 = 1/3, md_class = 3/4;  acc = 6/10
    nan = float("nan")
    for result in both_forms(preds, target, groups, 2, 3):
        assert_metrics(
            result, acc=0.6, acc_rank=[0.0, 0.5, 1.0], meo=0.5, di=1 / 3, md=0.75, meo_class=5 / 12, di_class=1 / 3,
            md_class=0.75, group_acc=[[1.0, 0.5, 0.0], [0.5, 1.0, nan]],
            group_count=torch.tensor([[2, 2, 2], [2, 2, 0]]),
        )  # fmt: skip


def test_subgroup_absent_overall_is_left_out_of_pairs():
    # G = 3 but subgroup 2 never appears; class 0: 2/2, 1/2;  class 1: 1/2, only subgroup 0
    preds, target, groups = make_batch([(0, 0, 2, 2), (0, 1, 2, 1), (1, 0, 2, 1)], num_classes=2)
    # TPR: g0 = 3/4, g1 = 1/2, g2 absent -> one pair: MEO = 1 - 1/4 = 3/4, DI = 1 - (1 - 2/3) = 2/3, MD = 1/4
    # no class has all 3 subgroups -> acc_rank all NaN; class 1 has one present subgroup -> only class 0 averages:
    # class 0 [1, .5]: MEO 1/2, DI 1/2, MD 1/2
    nan = float("nan")
    for result in both_forms(preds, target, groups, 2, 3):
        assert_metrics(
            result, acc=4 / 6, meo=0.75, di=2 / 3, md=0.25, group_tpr=[0.75, 0.5, nan], acc_rank=[nan, nan, nan],
            meo_class=0.5, di_class=0.5, md_class=0.5,
        )  # fmt: skip


def test_fewer_than_two_present_subgroups_is_fair_by_convention():
    preds, target, groups = make_batch([(0, 1, 3, 1), (1, 1, 2, 2)], num_classes=2)
    for result in both_forms(preds, target, groups, 2, 3):
        assert_metrics(result, acc=0.6, meo=1.0, di=1.0, md=0.0, meo_class=1.0, di_class=1.0, md_class=0.0)
        assert_metrics(result, group_tpr=[float("nan"), 0.6, float("nan")])


def test_unknown_group_samples_count_only_in_acc():
    fair = [(c, g, 2, 1) for c in range(2) for g in range(3)]
    base = subgroup_metrics(*make_batch(fair, num_classes=2), num_classes=2, num_groups=3)
    # plus 4 synthetic samples of subgroup -1, all wrong: acc = 6 correct / 16 samples = 3/8
    preds, target, groups = make_batch(fair + [(0, -1, 2, 0), (1, -1, 2, 0)], num_classes=2)
    for result in both_forms(preds, target, groups, 2, 3):
        assert_metrics(result, acc=3 / 8)
        assert_same({k: v for k, v in result.items() if k != "acc"}, {k: v for k, v in base.items() if k != "acc"})
    assert_metrics(base, acc=0.5)


def test_logits_and_indices_agree():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(60, 4, generator=gen)
    target = torch.randint(0, 4, (60,), generator=gen)
    groups = torch.randint(-1, 3, (60,), generator=gen)
    from_logits = both_forms(logits, target, groups, 4, 3)
    from_indices = both_forms(logits.argmax(1), target, groups, 4, 3)
    for a, b in zip(from_logits, from_indices):
        assert_same(a, b)
    assert 0 < from_logits[0]["acc"] < 1  # a non-trivial case


def random_batch(seed: int, n: int = 240, num_classes: int = 5, num_groups: int = 4):
    gen = torch.Generator().manual_seed(seed)
    target = torch.randint(0, num_classes, (n,), generator=gen)
    # a biased model: right more often for low subgroup ids
    groups = torch.randint(-1, num_groups, (n,), generator=gen)
    right = torch.rand(n, generator=gen) < 0.9 - 0.15 * groups.clamp(min=0)
    preds = torch.where(right, target, (target + 1) % num_classes)
    return preds, target, groups


def test_metric_over_batches_equals_function_on_concatenation():
    preds, target, groups = random_batch(1)
    metric = SubgroupFairness(5, 4)
    for start, stop in [(0, 17), (17, 100), (100, 101), (101, 101), (101, 240)]:  # includes an empty batch
        metric.update(preds[start:stop], target[start:stop], groups[start:stop])
    expected = subgroup_metrics(preds, target, groups, 5, 4)
    assert_same(metric.compute(), expected)
    assert expected["md"] > 0.2  # the bias is visible, so the comparison is not between trivial values
    assert expected["acc_rank"].shape == (4,) and bool((expected["acc_rank"].diff() >= 0).all())
    metric.reset()
    metric.update(preds[:10], target[:10], groups[:10])
    assert_same(metric.compute(), subgroup_metrics(preds[:10], target[:10], groups[:10], 5, 4))


def test_two_way_split_summed_like_ddp_equals_single_pass():
    preds, target, groups = random_batch(2)
    single = subgroup_metrics(preds, target, groups, 5, 4)
    rank0, rank1 = SubgroupFairness(5, 4), SubgroupFairness(5, 4)
    rank0.update(preds[0::2], target[0::2], groups[0::2])  # DistributedSampler-style interleaved shards
    rank1.update(preds[1::2], target[1::2], groups[1::2])
    summed = metrics_from_counts(
        rank0.correct + rank1.correct, rank0.total + rank1.total,
        rank0.n_correct_all + rank1.n_correct_all, rank0.n_all + rank1.n_all,
    )  # fmt: skip
    assert_same(summed, single)
    # one shard alone differs; computing it first also checks that merging drops the cached result
    assert not torch.equal(rank0.compute()["group_acc"], single["group_acc"])
    rank0.merge_state(rank1)
    assert_same(rank0.compute(), single)


def test_dataset_without_subgroups_reports_accuracy_only():
    preds, target, groups = make_batch([(0, -1, 4, 3), (1, -1, 4, 1)], num_classes=2)
    for result in both_forms(preds, target, groups, 2, 0):
        assert_metrics(result, acc=0.5, meo=1.0, di=1.0, md=0.0, meo_class=1.0, di_class=1.0, md_class=0.0)
        assert result["acc_rank"].shape == (0,) and result["group_acc"].shape == (2, 0)


@pytest.mark.parametrize(
    ("preds", "target", "groups", "message"),
    [
        (torch.randn(4, 3), torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long), "3 columns"),
        (torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), torch.tensor([0, 1]), "integer class indices"),
        (torch.tensor([0, 1]), torch.tensor([0, 1, 1]), torch.tensor([0, 1]), "same N samples"),
        (torch.tensor([0, 1]), torch.tensor([0, 2]), torch.tensor([0, 1]), r"target holds values outside \[0, 2\)"),
        (torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([0, 3]), r"groups holds values outside \[-1, 3\)"),
        (torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([-2, 0]), "use -1 for an unknown subgroup"),
        (torch.zeros(2, 2, 2), torch.tensor([0, 1]), torch.tensor([0, 1]), "indices"),
    ],
)
def test_bad_inputs_raise_config_error(preds, target, groups, message):
    with pytest.raises(ConfigError, match=message):
        subgroup_metrics(preds, target, groups, num_classes=2, num_groups=3)
    metric = SubgroupFairness(2, 3)
    with pytest.raises(ConfigError, match=message):
        metric.update(preds, target, groups)


def test_bad_sizes_raise_config_error():
    with pytest.raises(ConfigError, match="num_classes must be >= 1"):
        SubgroupFairness(0, 3)
    with pytest.raises(ConfigError, match="num_groups must be >= 0"):
        subgroup_metrics(torch.tensor([0]), torch.tensor([0]), torch.tensor([0]), num_classes=2, num_groups=-1)
