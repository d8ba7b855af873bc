"""Filter steps: the keep rule, chaining scorers and selectors and its report, CLIP score, MC-dropout uncertainty,
manual rejects."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from common.errors import ConfigError
from filters import (
    ClipScoreFilter,
    FilterContext,
    FilterStep,
    ManualRejectFilter,
    Needs,
    Scorer,
    Selector,
    SubgroupBalanceFilter,
    UncertaintyFilter,
    filter_names,
    select_block,
    select_keep,
)

# ---------------------------------------------------------------- select_keep


def test_select_keep_keeps_ceil_share_of_each_class_and_the_highest_scores():
    generator = torch.Generator().manual_seed(0)
    labels = torch.tensor([0] * 10 + [1] * 7 + [2] * 3 + [3] * 1)[torch.randperm(21, generator=generator)]
    scores = torch.randn(21, generator=generator)
    keep = select_keep(scores, labels, ratio=0.3)
    for c, n_c in zip(range(4), (10, 7, 3, 1)):
        members = labels == c
        assert int(keep[members].sum()) == math.ceil(0.7 * n_c)
        dropped = scores[members & ~keep]
        if len(dropped):
            assert scores[members & keep].min() > dropped.max()


def test_select_keep_is_exact_despite_float_rounding():
    # (1 - 0.7) * 10 == 3.0000000000000004 in floats: a naive ceil would keep 4
    assert int(select_keep(torch.arange(10.0), torch.zeros(10), ratio=0.7).sum()) == 3
    assert int(select_keep(torch.arange(10.0), torch.zeros(10), ratio=0.1).sum()) == 9
    assert select_keep(torch.arange(5.0), torch.zeros(5), ratio=0.0).all()
    assert int(select_keep(torch.arange(5.0), torch.zeros(5), ratio=0.99).sum()) == 1  # ceil keeps one per class


def test_select_keep_global_mode_and_deterministic_ties():
    scores = torch.tensor([5.0, 1.0, 9.0, 3.0, 7.0, 2.0])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    keep = select_keep(scores, labels, ratio=0.5, per_class=False)
    assert keep.tolist() == [True, False, True, False, True, False]  # top 3 overall, class 1 keeps only one
    ties = select_keep(torch.ones(6), torch.zeros(6), ratio=0.5)
    assert ties.tolist() == [True, True, True, False, False, False]  # equal scores: lower index first
    nan_last = select_keep(torch.tensor([float("nan"), 0.0, -5.0]), torch.zeros(3), ratio=0.5)
    assert nan_last.tolist() == [False, True, True]


# hand-made scores: class 0 spans [0, 10], class 1 spans [5, 9]
RANGE_SCORES = torch.tensor([0.0, 1.0, 2.0, 3.0, 10.0, 5.0, 5.5, 6.0, 9.0])
RANGE_LABELS = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 1])


def test_range_mode_drops_the_bottom_of_each_class_score_range():
    keep = select_keep(RANGE_SCORES, RANGE_LABELS, ratio=0.3, mode="range")
    # class 0: threshold 0 + 0.3 * 10 = 3 (kept: 3 despite 0.3 * 10 = 3.0000000000000004); class 1: 5 + 0.3 * 4 = 6.2
    assert RANGE_SCORES[keep].tolist() == [3.0, 10.0, 9.0]
    # the count quantile keeps ceil(0.7 * 5) = 4 and ceil(0.7 * 4) = 3: other samples, another count
    quantile = select_keep(RANGE_SCORES, RANGE_LABELS, ratio=0.3, mode="quantile")
    assert RANGE_SCORES[quantile].tolist() == [1.0, 2.0, 3.0, 10.0, 5.5, 6.0, 9.0]
    assert torch.equal(quantile, select_keep(RANGE_SCORES, RANGE_LABELS, ratio=0.3))  # quantile is the default


def test_range_mode_globally_and_its_edge_cases():
    keep = select_keep(RANGE_SCORES, RANGE_LABELS, ratio=0.3, per_class=False, mode="range")
    assert RANGE_SCORES[keep].tolist() == [3.0, 10.0, 5.0, 5.5, 6.0, 9.0]  # one range [0, 10] for all: threshold 3
    assert select_keep(RANGE_SCORES, RANGE_LABELS, ratio=0.0, mode="range").all()
    assert select_keep(torch.full((4,), 2.0), torch.zeros(4), ratio=0.9, mode="range").all()  # no spread: keep all
    with_nan = torch.tensor([float("nan"), 0.0, 4.0, 10.0])
    assert select_keep(with_nan, torch.zeros(4), ratio=0.5, mode="range").tolist() == [False, False, False, True]
    with pytest.raises(ConfigError, match=r"UncertaintyFilter\.mode"):
        UncertaintyFilter(ratio=0.1, mode="bins")


def test_a_filter_in_range_mode_selects_and_reports_by_range():
    n = 9
    images = RANGE_SCORES.to(torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()  # brightness = score
    context = FilterContext(generation=1, class_names=["zero", "one"], sample_ids=torch.arange(n))
    keep, report = apply_filters([PixelMeanFilter(ratio=0.3, mode="range")], images, RANGE_LABELS, context)
    assert torch.nonzero(keep).flatten().tolist() == [3, 4, 8]  # 6.0 floors to 6 < 6.2: dropped
    assert report["filters"]["brightness"]["mode"] == "range"
    assert report["filters"]["brightness"]["kept_per_class"] == [2, 1]


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, "a lot", float("nan")])
def test_ratio_outside_unit_interval_names_filter_and_field(ratio):
    with pytest.raises(ConfigError, match=r"UncertaintyFilter\.ratio"):
        UncertaintyFilter(ratio=ratio)
    with pytest.raises(ConfigError, match=r"ClipScoreFilter\.ratio"):
        ClipScoreFilter(ratio=ratio)


# ---------------------------------------------------------------- chaining


class PixelMeanFilter(Scorer):
    """Stand-in scorer: brighter = better; records what it was given."""

    name = "brightness"

    def score(self, images, labels, context):
        self.seen_ids = context.sample_ids.clone()
        return images.float().mean(dim=(1, 2, 3))


class NegatedIdFilter(PixelMeanFilter):
    name = "small_id"

    def score(self, images, labels, context):
        self.seen_ids = context.sample_ids.clone()
        return -context.sample_ids.double()


def context_for(n: int, generation: int = 1, classifier: nn.Module | None = None, first_id: int = 100):
    return FilterContext(
        generation=generation,
        class_names=["zero", "one"],
        previous_classifier=classifier,
        sample_ids=torch.arange(first_id, first_id + n),
        device="cpu",
    )


def apply_filters(filters, images, labels, context):
    """What a run does: every scorer scores every sample (the generation stage, batch by batch), then the chain
    selects once on the whole block (the push stage)."""
    scores = {name: filt.score(images, labels, context)
              for name, filt in zip(filter_names(filters), filters) if isinstance(filt, Scorer)}
    return select_block(filters, scores, labels, context)


def test_filters_select_among_the_survivors_of_the_previous_one_and_report_counts():
    n = 20
    brightness = torch.arange(n, dtype=torch.uint8) * 10  # sample i has brightness 10 i
    images = brightness.view(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()
    labels = torch.arange(n) % 2
    first, second = PixelMeanFilter(ratio=0.5), NegatedIdFilter(ratio=0.4)
    keep, report = apply_filters([first, second], images, labels, context_for(n))

    survivors_first = torch.arange(10, 20)  # the brighter half of each class
    assert first.seen_ids.tolist() == second.seen_ids.tolist() == list(range(100, 120))  # both score every sample
    # the second filter keeps ceil(0.6 * 5) = 3 smallest ids of each class among the first one's survivors
    assert report["filters"]["small_id"]["input"] == len(survivors_first)
    assert torch.nonzero(keep).flatten().tolist() == [10, 11, 12, 13, 14, 15]

    assert report["filter_input"] == 20 and report["filter_kept"] == 6 and report["filter_dropped"] == 14
    one, two = report["filters"]["brightness"], report["filters"]["small_id"]
    assert (one["input"], one["kept"], one["dropped"]) == (20, 10, 10)
    assert one["kept_per_class"] == [5, 5] and one["dropped_per_class"] == [5, 5]
    assert (two["input"], two["kept"], two["dropped"]) == (10, 6, 4)
    assert two["kept_per_class"] == [3, 3] and two["dropped_per_class"] == [2, 2]
    histogram = one["score_histogram"]
    assert sum(histogram["counts"]) == 20 and len(histogram["counts"]) == 20 and len(histogram["edges"]) == 21
    assert histogram["edges"][0] == pytest.approx(0.0) and histogram["edges"][-1] == pytest.approx(190.0)


def test_no_filters_keeps_everything_and_same_names_stay_apart():
    images = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    keep, report = apply_filters([], images, torch.zeros(4), context_for(4))
    assert keep.all() and report["filter_dropped"] == 0
    _, report = apply_filters([PixelMeanFilter(0.5), PixelMeanFilter(0.5)], images, torch.zeros(4), context_for(4))
    assert list(report["filters"]) == ["brightness", "brightness_2"]
    assert report["filter_kept"] == 1


class EvenIdSelector(Selector):
    """Stand-in selector: keeps the even ids it is given; records them."""

    name = "even_id"

    def select(self, labels, context):
        self.seen_ids = context.sample_ids.clone()
        return context.sample_ids % 2 == 0


def test_a_selector_keeps_exactly_what_it_selects_among_the_survivors():
    n = 20
    images = (torch.arange(n, dtype=torch.uint8) * 10).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    labels = torch.arange(n) // 10  # ids 100-109 class 0, 110-119 class 1
    scorer, selector = PixelMeanFilter(ratio=0.5), EvenIdSelector()
    keep, report = apply_filters([scorer, selector], images, labels, context_for(n))
    # the scorer keeps the brighter half of each class (ids 105-109, 115-119); the selector sees only those
    assert selector.seen_ids.tolist() == [105, 106, 107, 108, 109, 115, 116, 117, 118, 119]
    assert (torch.nonzero(keep).flatten() + 100).tolist() == [106, 108, 116, 118]
    assert report["filters"]["even_id"] == {"input": 10, "kept": 4, "dropped": 6, "kept_per_class": [2, 2],
                                            "dropped_per_class": [3, 3]}  # counts only: a selector has no score
    assert set(report["filters"]["brightness"]) >= {"ratio", "per_class", "mode", "score_mean", "score_histogram"}


def test_a_selector_first_in_the_chain_and_a_scorer_after_it():
    n = 8
    images = (torch.arange(n, dtype=torch.uint8) * 10).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    keep, report = apply_filters([EvenIdSelector(), PixelMeanFilter(ratio=0.5, per_class=False)], images,
                                 torch.zeros(n), context_for(n))
    # even ids 100, 102, 104, 106 survive; the scorer keeps the brighter half of them: 104 and 106
    assert (torch.nonzero(keep).flatten() + 100).tolist() == [104, 106]
    assert report["filters"]["brightness"]["input"] == 4


class WrongMaskSelector(Selector):
    def select(self, labels, context):
        return torch.ones(len(labels))  # floats, not a bool mask


class NeitherKind(FilterStep):  # neither a scorer nor a selector
    name = "neither"


def test_the_chain_refuses_a_selection_that_is_not_a_bool_mask_and_a_step_of_no_kind():
    labels = torch.zeros(4)
    with pytest.raises(RuntimeError, match=r"must return a bool mask of shape \(4,\).*torch.float32"):
        select_block([WrongMaskSelector()], {}, labels, context_for(4))
    with pytest.raises(TypeError, match="subclasses filters.Scorer or filters.Selector"):
        select_block([NeitherKind()], {}, labels, context_for(4))


def test_what_each_step_needs_is_declared_once_as_needs():
    assert UncertaintyFilter.needs == Needs(previous_classifier=True, mc_dropout=True)
    assert SubgroupBalanceFilter.needs == Needs(subgroups=True)
    assert ClipScoreFilter.needs == ManualRejectFilter.needs == Needs()
    with pytest.raises(ValueError, match="previous_classifier=True"):
        Needs(mc_dropout=True)


# ---------------------------------------------------------------- CLIP

TINY_CLIP = "genbias-test-tiny-clip"
TINY_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 16, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def tiny_clip_filter(**kwargs) -> ClipScoreFilter:
    options = dict(model_name=TINY_CLIP, pretrained=None, model_config=TINY_CLIP_CONFIG, class_names=["cat", "dog"])
    options.update(kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "randomly initialised" is expected here
        return ClipScoreFilter(ratio=0.5, **options)


def clip_inputs(n: int = 6, channels: int = 3, size: int = 16):
    generator = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (n, channels, size, size), generator=generator, dtype=torch.uint8)
    return images, torch.arange(n) % 2


def reference_clip_scores(filt: ClipScoreFilter, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """open_clip's own PIL preprocessing and encoders, one image at a time."""
    import open_clip
    from PIL import Image

    model = filt.load_model("cpu")
    preprocess = open_clip.image_transform(open_clip.get_model_preprocess_cfg(model)["size"], is_train=False)
    tokenizer = open_clip.get_tokenizer(TINY_CLIP)
    text = model.encode_text(tokenizer(["a photo of a cat", "a photo of a dog"]), normalize=True)
    pixels = torch.stack([preprocess(Image.fromarray(image.permute(1, 2, 0).numpy())) for image in images])
    with torch.no_grad():
        image_features = model.encode_image(pixels, normalize=True)
        return 100 * (image_features * text[labels]).sum(dim=-1)


@pytest.mark.filterwarnings("ignore:ClipScoreFilter uses a randomly initialised")
def test_clip_score_matches_open_clip_reference_pipeline():
    filt = tiny_clip_filter(batch_size=4)
    images, labels = clip_inputs()
    scores = filt.score(images, labels, context_for(len(images)))
    assert scores.shape == (6,) and torch.isfinite(scores).all() and scores.abs().max() <= 100
    assert torch.allclose(scores, reference_clip_scores(filt, images, labels), atol=1e-3)


@pytest.mark.filterwarnings("ignore:ClipScoreFilter uses a randomly initialised")
def test_clip_preprocess_resizes_grey_batches_like_clip():
    filt = tiny_clip_filter()
    filt.load_model("cpu")
    grey = clip_inputs(n=3, channels=1, size=24)[0]
    batch = filt.preprocess(grey, "cpu")
    assert batch.shape == (3, 3, 16, 16)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    unnormalised = batch * std + mean
    assert torch.allclose(unnormalised[:, 0], unnormalised[:, 1], atol=1e-5)  # grey repeated to RGB
    assert torch.allclose(unnormalised[:, 0], unnormalised[:, 2], atol=1e-5)
    assert unnormalised.min() >= -1e-6 and unnormalised.max() <= 1 + 1e-6
    import open_clip
    from PIL import Image

    preprocess = open_clip.image_transform(16, is_train=False)
    reference = torch.stack([preprocess(Image.fromarray(image[0].numpy())) for image in grey])
    assert (batch - reference).abs().mean() < 0.05  # tensor bicubic vs PIL bicubic: close, not bit-equal


@pytest.mark.filterwarnings("ignore:ClipScoreFilter uses a randomly initialised")
def test_clip_checkpoint_path_reloads_the_same_model(tmp_path):
    original = tiny_clip_filter()
    images, labels = clip_inputs()
    expected = original.score(images, labels, context_for(len(images)))
    path = tmp_path / "tiny_clip.pt"
    torch.save(original.load_model("cpu").state_dict(), path)
    reloaded = ClipScoreFilter(ratio=0.5, model_name=TINY_CLIP, checkpoint_path=str(path), class_names=["cat", "dog"])
    assert torch.allclose(reloaded.score(images, labels, context_for(len(images))), expected, atol=1e-5)
    # without class_names the prompts come from the context ("zero"/"one"): other prompts, other scores
    from_context = ClipScoreFilter(ratio=0.5, model_name=TINY_CLIP, checkpoint_path=str(path))
    assert not torch.allclose(from_context.score(images, labels, context_for(len(images))), expected, atol=1e-2)


@pytest.mark.filterwarnings("ignore:ClipScoreFilter uses a randomly initialised")
def test_clip_filter_drops_the_worst_half_per_class_through_apply_filters():
    filt = tiny_clip_filter()
    images, labels = clip_inputs(n=8)
    scores = filt.score(images, labels, context_for(8))
    keep, report = apply_filters([filt], images, labels, context_for(8))
    assert torch.equal(keep, select_keep(scores, labels, 0.5))
    assert report["filters"]["clip"]["kept_per_class"] == [2, 2]


def test_clip_weights_missing_offline_say_what_to_fetch(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path))
    filt = ClipScoreFilter(ratio=0.3, model_name="ViT-B-32", pretrained="openai")
    with pytest.raises(ConfigError, match="checkpoint_path") as error:
        filt.validate(context_for(2))
    assert "ViT-B-32/openai" in str(error.value) and "timm/vit_base_patch32_clip_224.openai" in str(error.value)
    with pytest.raises(ConfigError, match="not a known|neither a file nor a tag"):
        ClipScoreFilter(ratio=0.3, pretrained="no-such-tag").check_available()
    with pytest.raises(ConfigError, match="does not exist"):
        ClipScoreFilter(ratio=0.3, checkpoint_path=str(tmp_path / "missing.pt")).check_available()
    with pytest.raises(ConfigError, match="not an open_clip model"):
        ClipScoreFilter(ratio=0.3, model_name="ViT-Nope").check_available()
    with pytest.raises(ConfigError, match="class_name"):
        ClipScoreFilter(ratio=0.3, template="a photo")


# ---------------------------------------------------------------- uncertainty


class ConfidenceByBrightness(nn.Module):
    """Stand-in classifier: bright images get a confident logit, black images flat logits.

    The dropout noise moves the confident logit around; batch norm must stay frozen (eval) during MC passes.
    """

    def __init__(self, dropout: float = 0.5) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.norm = nn.BatchNorm1d(8)
        self.modes_seen: list[tuple[bool, bool]] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.modes_seen.append((self.dropout.training, self.norm.training))
        brightness = images.float().mean(dim=(1, 2, 3)) / 255
        hidden = self.dropout(brightness[:, None].expand(-1, 8))
        confident = 6.0 * hidden.mean(dim=1)
        return torch.stack([confident, torch.zeros_like(confident), torch.zeros_like(confident)], dim=1)


def uncertainty_inputs():
    clean = torch.full((3, 1, 4, 4), 255, dtype=torch.uint8)
    ambiguous = torch.zeros((3, 1, 4, 4), dtype=torch.uint8)
    images = torch.cat([clean, ambiguous])[[0, 3, 1, 4, 2, 5]]  # clean, ambiguous, clean, ...
    return images, torch.zeros(6, dtype=torch.long)


def test_uncertainty_ranks_ambiguous_below_clean_with_mc_dropout():
    model = ConfidenceByBrightness().train()
    images, labels = uncertainty_inputs()
    filt = UncertaintyFilter(ratio=0.5, score="entropy", mc_passes=7, batch_size=4)
    scores = filt.score(images, labels, context_for(6, classifier=model))
    clean, ambiguous = scores[[0, 2, 4]], scores[[1, 3, 5]]
    assert torch.allclose(ambiguous, torch.full((3,), -math.log(3), dtype=scores.dtype), atol=1e-5)
    assert (clean > -math.log(3) + 0.5).all()
    assert len(set(clean.tolist())) > 1  # different dropout masks per sample: MC dropout really sampled
    assert len(model.modes_seen) == 7 * 2  # 7 passes over 2 batches
    assert all(mode == (True, False) for mode in model.modes_seen)  # dropout on, batch norm frozen
    assert model.training and model.norm.training  # modes restored afterwards
    keep, _ = apply_filters([filt], images, labels, context_for(6, classifier=model))
    assert keep.tolist() == [True, False, True, False, True, False]
    again = UncertaintyFilter(ratio=0.5, score="entropy", mc_passes=7, batch_size=4).score(
        images, labels, context_for(6, classifier=model)
    )
    assert torch.equal(scores, again)  # seeded from the generation


def test_label_probability_is_the_mc_mean_probability_of_the_requested_label():
    model = ConfidenceByBrightness().train()
    images, labels = uncertainty_inputs()  # every sample asks for class 0
    scores = UncertaintyFilter(ratio=0.5, mc_passes=7, batch_size=4).score(images, labels,
                                                                            context_for(6, classifier=model))
    clean, ambiguous = scores[[0, 2, 4]], scores[[1, 3, 5]]
    assert torch.allclose(ambiguous, torch.full((3,), 1 / 3, dtype=scores.dtype), atol=1e-6)  # flat logits
    assert (clean > 0.9).all() and (clean <= 1).all()
    with pytest.raises(ConfigError, match=r"UncertaintyFilter\.score"):
        UncertaintyFilter(ratio=0.5, score="margin")


def test_a_confidently_wrong_class_sample_is_dropped_by_label_probability_and_kept_by_entropy():
    model = ConfidenceByBrightness(dropout=0.0).eval()  # bright images: confidently class 0; black: flat
    bright, black = torch.full((1, 1, 4, 4), 255, dtype=torch.uint8), torch.zeros((1, 1, 4, 4), dtype=torch.uint8)
    images = torch.cat([bright, black])
    labels = torch.tensor([1, 1])  # both were generated as class 1: the bright one shows class 0 instead
    context = context_for(2, classifier=model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no dropout: one softmax pass
        by_label, _ = apply_filters([UncertaintyFilter(ratio=0.5)], images, labels, context)
        by_entropy, _ = apply_filters([UncertaintyFilter(ratio=0.5, score="entropy")], images, labels, context)
        scores = UncertaintyFilter(ratio=0.5).score(images, labels, context)
    assert by_label.tolist() == [False, True]  # p(class 1) = 1 / (e^6 + 2) for the bright image, 1/3 for the black
    assert by_entropy.tolist() == [True, False]  # the bright image is the more certain one, of the wrong class
    expected = torch.tensor([1 / (math.exp(6) + 2), 1 / 3], dtype=scores.dtype)
    assert torch.allclose(scores, expected, atol=1e-6)


def test_uncertainty_without_dropout_warns_and_uses_one_softmax_pass():
    model = ConfidenceByBrightness(dropout=0.0).eval()
    images, labels = uncertainty_inputs()
    with pytest.warns(UserWarning, match="no dropout module.*scoring the entropy of a single softmax pass"):
        scores = UncertaintyFilter(ratio=0.5, score="entropy", mc_passes=5).score(
            images, labels, context_for(6, classifier=model))
    assert len(model.modes_seen) == 1
    probabilities = model(images).softmax(dim=1)
    expected = (probabilities * probabilities.log()).sum(dim=1)
    assert torch.allclose(scores.float(), expected, atol=1e-6)
    assert not model.training
    # the warning names the score the filter computes, not always "entropy"
    with pytest.warns(UserWarning, match="scoring the label probability of a single softmax pass"):
        UncertaintyFilter(ratio=0.5, mc_passes=5).score(images, labels, context_for(6, classifier=model))


def test_uncertainty_needs_a_previous_classifier():
    images, labels = uncertainty_inputs()
    with pytest.raises(ConfigError, match="previous"):
        apply_filters([UncertaintyFilter(ratio=0.2)], images, labels, context_for(6, classifier=None))
    with pytest.raises(ConfigError, match="mc_passes"):
        UncertaintyFilter(ratio=0.2, mc_passes=0)


# ---------------------------------------------------------------- manual review


def test_manual_filter_drops_exactly_the_listed_ids(tmp_path):
    reject = tmp_path / "rejects.txt"
    reject.write_text("# reviewer: blurry digits\n103\n\n107  # two heads\n111\n")
    filt = ManualRejectFilter(reject_lists={2: str(reject)})
    images = torch.zeros(12, 1, 2, 2, dtype=torch.uint8)
    keep, report = apply_filters([filt], images, torch.arange(12) % 2, context_for(12, generation=2))
    assert torch.nonzero(~keep).flatten().tolist() == [3, 7, 11]  # ids 100 + index
    assert report["filters"]["manual"]["dropped_per_class"] == [0, 3]
    keep_other_generation, _ = apply_filters([filt], images, torch.zeros(12), context_for(12, generation=3))
    assert keep_other_generation.all()


def test_manual_filter_reads_reject_dir_and_errors_on_unknown_ids(tmp_path):
    (tmp_path / "gen_1.txt").write_text("100\n250\n999\n")
    filt = ManualRejectFilter(reject_dir=str(tmp_path))
    images = torch.zeros(5, 1, 2, 2, dtype=torch.uint8)
    with pytest.raises(ConfigError, match="250, 999"):
        apply_filters([filt], images, torch.zeros(5), context_for(5, generation=1))
    (tmp_path / "gen_1.txt").write_text("100\n104\n")
    keep, _ = apply_filters([filt], images, torch.zeros(5), context_for(5, generation=1))
    assert keep.tolist() == [False, True, True, True, False]


def test_manual_filter_after_another_filter_accepts_ids_already_dropped(tmp_path):
    (tmp_path / "gen_1.txt").write_text("100\n119\n")
    n = 20
    images = (torch.arange(n, dtype=torch.uint8) * 10).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    keep, report = apply_filters(
        [PixelMeanFilter(ratio=0.5, per_class=False), ManualRejectFilter(reject_dir=str(tmp_path))],
        images,
        torch.zeros(n),
        context_for(n, generation=1),
    )
    assert torch.nonzero(keep).flatten().tolist() == list(range(10, 19))  # id 100 already gone, id 119 rejected
    assert report["filters"]["manual"]["dropped"] == 1


def test_manual_filter_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        ManualRejectFilter(reject_lists={1: str(tmp_path / "missing.txt")})
    with pytest.raises(ConfigError, match="not a directory"):
        ManualRejectFilter(reject_dir=str(tmp_path / "missing"))
    bad = tmp_path / "bad.txt"
    bad.write_text("12\nsample 13\n")
    with pytest.raises(ConfigError, match="bad.txt:2"):
        apply_filters(
            [ManualRejectFilter(reject_lists={"1": str(bad)})],
            torch.zeros(2, 1, 2, 2, dtype=torch.uint8),
            torch.zeros(2),
            context_for(2, generation=1),
        )


@pytest.mark.filterwarnings("ignore:ClipScoreFilter uses a randomly initialised")
def test_a_clip_checkpoint_loaded_is_recorded_with_its_sha256(tmp_path):
    import hashlib

    from common.environment import loaded_weight_files

    path = tmp_path / "tiny_clip_for_provenance.pt"
    torch.save(tiny_clip_filter().load_model("cpu").state_dict(), path)
    ClipScoreFilter(ratio=0.5, model_name=TINY_CLIP, checkpoint_path=str(path)).load_model("cpu")
    record = next(r for r in loaded_weight_files() if r["path"] == str(path.resolve()))
    assert record["what"] == f"CLIP {TINY_CLIP} (ClipScoreFilter)"
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- the examples of docs/extending.md


def extending_doc_examples() -> dict:
    """The names the Python blocks of docs/extending.md's "A filter" section define, run as a user would paste them."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "extending.md").read_text()
    section = text[text.index("## A filter\n"):text.index("## A metric\n")]
    namespace: dict = {}
    for block in re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL):
        exec(compile(block, "docs/extending.md", "exec"), namespace)
    return namespace


def test_the_scorer_and_the_selector_of_docs_extending_run_through_the_chain():
    examples = extending_doc_examples()
    scorer, selector = examples["Brightness"](ratio=0.5), examples["FirstHundredPerClass"]()
    assert isinstance(scorer, Scorer) and isinstance(selector, Selector)
    n = 240
    labels = torch.arange(n) % 2  # 120 samples per class
    images = (torch.arange(n) % 256).to(torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    keep, report = apply_filters([selector, scorer], images, labels, context_for(n))
    assert report["filters"]["first_100"]["kept_per_class"] == [100, 100]  # the first 100 of each class: ids < 200
    # the brighter half of each class among those: brightness = index, so indices 100-199
    assert torch.nonzero(keep).flatten().tolist() == list(range(100, 200))
