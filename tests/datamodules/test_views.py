"""Image views in the data path: the classifiers and a generator see the same real files and the same stored
generated images, each through its own resize and crop; the in-memory datasets keep their one-gather batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from common.errors import ConfigError
from common.image_views import ImageView
from datamodules.base import ImageSplit, ViewedSplit
from datamodules.generational import GenerationalDataModule, TrainingSpec
from datamodules.hard_imagenet import HardImageNet
from datamodules.mixing import MixedTrainSet
from datamodules.regime import DataRegime
from tests.datamodules.test_mixing import FakeSource
from tests.fakes.hard_imagenet import add_striped_image, write_fake_hard_imagenet


@pytest.fixture(scope="module")
def landscape_roots(tmp_path_factory) -> tuple[str, str]:
    """A fake tree of 40 x 64 landscape photos, plus one lossless 40 x 120 image striped red | green | blue."""
    roots = write_fake_hard_imagenet(tmp_path_factory.mktemp("views"), n_train_per_class=2, n_val_per_class=1,
                                     size=40, width=64)
    add_striped_image(roots)
    return roots


def hard_imagenet(roots) -> HardImageNet:
    return HardImageNet(*roots, image_size=16, resize=20, val_fraction=0.0)


def test_a_generator_sees_the_real_files_undistorted_and_the_classifiers_as_the_authors_prepare_them(landscape_roots):
    source = hard_imagenet(landscape_roots)
    train = source.load()["train"]
    striped = [Path(p).stem for p in train.image_paths].index("n_striped")
    generator = train.viewed(ImageView.shorter_side(20))
    sample = generator[striped]
    assert "mask" not in sample  # no mask: the generator never ablates
    image, label, group = sample["image"], sample["label"], sample["subgroup"]
    # shorter side 40 -> 20, width 120 -> 60, centre 20 columns = original columns 40..79: only green
    assert image.shape == (3, 20, 20) and int(label) == 0 and int(group) == -1
    assert (image[1] == 255).all() and (image[0] == 0).all() and (image[2] == 0).all()
    # the classifiers' view squashes 40 x 120 to 20 x 20 and crops 16: red and blue stripes at the borders
    classifier_image = train[striped]["image"]
    assert classifier_image.shape == (3, 16, 16)
    assert (classifier_image[0, :, 0] > 200).all() and (classifier_image[2, :, -1] > 200).all()
    assert train.viewed(source.classifier_view) is train
    assert generator[0]["image"].shape == (3, 20, 20)  # every landscape photo comes out square


def stored_block(n: int, side: int) -> torch.Tensor:
    """n generated squares of ``side``, sample i of constant value 100 + i (a resize keeps a constant image)."""
    return (100 + torch.arange(n, dtype=torch.uint8)).view(n, 1, 1, 1).expand(n, 3, side, side).contiguous()


def real_and_synthetic(dm: GenerationalDataModule, spec: TrainingSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Every real and every stacked image of the training set the loader of ``spec`` draws from."""
    mixed = dm.train_loader(spec).dataset
    real = mixed.__getitems__(list(range(mixed.n_real)))["image"]
    synthetic = mixed.__getitems__(list(range(mixed.n_real, len(mixed))))["image"]
    return real, synthetic


def test_stored_images_reach_each_consumer_at_its_view(landscape_roots, tmp_path):
    dm = GenerationalDataModule(hard_imagenet(landscape_roots), regime=DataRegime(synthetic_share=0.5), batch_size=16)
    dm.open_stack(tmp_path / "stack")
    dm.push_block(stored_block(12, 48), torch.arange(12) % 15, 1)  # stored at 48 x 48
    for spec, side in ((TrainingSpec(16, 0), 16), (TrainingSpec(16, 0, image_size=20), 20)):
        real, synthetic = real_and_synthetic(dm, spec)
        assert real.shape[1:] == synthetic.shape[1:] == (3, side, side)
        values = synthetic.flatten(1)
        assert (values == values[:, :1]).all()  # each stored image arrives whole, resized
        assert values[:, 0].tolist() == list(range(100, 112))
        images = next(iter(dm.train_loader(spec)))["image"]  # and the loader's batches mix them
        assert images.shape[1:] == (3, side, side)


def test_in_memory_datasets_keep_the_identity_view_and_the_joined_fast_path(tmp_path):
    dm = GenerationalDataModule(FakeSource(40), regime=DataRegime(synthetic_share=0.5), batch_size=8)
    dm.open_stack(tmp_path / "stack")
    dm.push_block(torch.full((10, 1, 8, 8), 200, dtype=torch.uint8), torch.arange(10) % 4, 1)
    view = dm.view(None)
    train = dm.viewed_split("train", view)
    assert train is dm.prepare()["train"]
    mixed = MixedTrainSet(train, dm.stack, stack_view=view)
    assert mixed.stack_view is None and mixed.joined is not None  # one gather per batch, as before
    # a generator at another resolution gets the in-memory images resized on access
    upsampled = dm.viewed_split("train", dm.view(16))
    assert isinstance(upsampled, ViewedSplit) and upsampled[0]["image"].shape == (1, 16, 16)
    real, synthetic = real_and_synthetic(dm, TrainingSpec(8, 0, image_size=16))
    assert real.shape[1:] == synthetic.shape[1:] == (1, 16, 16)
    assert (real == 7).all() and (synthetic == 200).all()


def test_the_source_refuses_generated_shapes_it_cannot_store(landscape_roots):
    with pytest.raises(ConfigError, match=r"\[3, 32, 32\].*own shape \[1, 8, 8\]"):
        FakeSource().check_stack_shape((3, 32, 32))
    FakeSource().check_stack_shape((1, 8, 8))
    source = hard_imagenet(landscape_roots)
    source.check_stack_shape((3, 512, 512))
    for shape in ((3, 512, 256), (1, 64, 64)):
        with pytest.raises(ConfigError, match="RGB squares"):
            source.check_stack_shape(shape)
    assert ImageSplit(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.zeros(2), torch.zeros(2)).viewed(
        ImageView(8)).images is not None
