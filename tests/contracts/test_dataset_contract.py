"""Every registered dataset: its card is sound and agrees with its data (shapes, dtypes, labels, subgroups, masks),
and it survives the trip through the run directory's state file."""

from __future__ import annotations

import pytest
import torch

from datamodules.facts import DatasetFacts
from tests.contracts.registry import DATASETS

SAMPLES_CHECKED = 8  # per split: lazily decoded datasets decode each one


@pytest.fixture(scope="module", params=DATASETS, ids=[case.name for case in DATASETS])
def loaded(request, tmp_path_factory):
    source = request.param.build(tmp_path_factory.mktemp(request.param.name))
    source.validate()
    return request.param, source, source.load()


def test_the_card_names_the_dataset_and_is_sound(loaded):
    case, source, _ = loaded
    facts = source.facts
    assert isinstance(facts, DatasetFacts) and facts.name == case.name and facts.problems() == []
    assert DatasetFacts.from_json(facts.to_json()) == facts  # what state.json records, the report reads back
    assert (source.name, source.num_classes, source.num_groups) == (facts.name, facts.num_classes, facts.num_groups)


def test_the_splits_agree_with_the_card(loaded):
    _, source, splits = loaded
    facts = source.facts
    assert set(splits) == {"train", "val", "test"}
    for name, split in splits.items():
        assert len(split) > 0, name
        assert split.labels.dtype == torch.int64 and split.groups.dtype == torch.int64
        assert int(split.labels.min()) >= 0 and int(split.labels.max()) < facts.num_classes
        assert int(split.groups.min()) >= -1 and int(split.groups.max()) < max(facts.num_groups, 1)
        if facts.num_groups == 0:
            assert (split.groups == -1).all(), f"{name}: a dataset without subgroups labels none"
        for index in range(min(len(split), SAMPLES_CHECKED)):
            sample = split[index]
            assert set(sample) == ({"image", "label", "subgroup"} | ({"mask"} if facts.has_masks else set())), name
            image, label, group = sample["image"], sample["label"], sample["subgroup"]
            assert image.dtype == torch.uint8 and tuple(image.shape) == facts.image_shape, (name, image.shape)
            assert int(label) == int(split.labels[index]) and int(group) == int(split.groups[index])
            if facts.has_masks:
                mask = sample["mask"]
                assert mask.dtype == torch.bool and tuple(mask.shape[-2:]) == facts.image_shape[-2:]
    assert torch.unique(splits["train"].labels).tolist() == list(range(facts.num_classes))  # every class is there


def test_pixel_subgroups_are_read_back_from_the_test_images(loaded):
    _, source, splits = loaded
    if source.facts.oracle != "pixels":
        pytest.skip("subgroups are not read from the pixels")
    test = splits["test"]
    images = torch.stack([test[i]["image"] for i in range(len(test))])
    assert torch.equal(source.subgroups_from_pixels(images), test.groups)


def test_the_classifier_view_keeps_the_cards_shape(loaded):
    _, source, splits = loaded
    image = splits["train"][0]["image"]
    assert tuple(source.classifier_view(image).shape) == source.facts.image_shape
    source.check_stack_shape(source.facts.image_shape)  # generated images of the card's shape can be stored
