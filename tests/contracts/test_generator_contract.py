"""Every registered generator keeps the loop's contract: uint8 images of its declared shape, sampled by (seed, index)
alone however the block is batched, fresh() equal to a newly built module, and the trainer needs it declares (its
shown losses are really logged)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_modules.trainer_needs import TrainerNeeds
from tests.contracts.registry import GENERATORS, quiet
from tests.fakes.samples import labelled_loader
from tests.float_rounding import assert_same_uint8_images

IDS = [case.cls.__name__ for case in GENERATORS]
BLOCK = 6


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("generators")


def build(case, workdir, seed: int = 0):
    torch.manual_seed(seed)
    return quiet(case.build, workdir)


def trainer(**kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, **kwargs)


def block(num_classes: int, seed: int, batch_size: int) -> DataLoader:
    """The block's predict batches as the loop hands them over: (indices, labels, seeds)."""
    labels = torch.arange(BLOCK) % num_classes
    return DataLoader(TensorDataset(torch.arange(BLOCK), labels, torch.full((BLOCK,), seed)), batch_size=batch_size)


def generated(module, loader) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    outputs = trainer().predict(module, loader)
    return tuple(torch.cat([o[key] for o in outputs]) for key in ("index", "label", "image"))


@pytest.mark.parametrize("case", GENERATORS, ids=IDS)
def test_samples_are_uint8_of_the_declared_shape_and_depend_only_on_seed_and_index(case, workdir):
    module = build(case, workdir)
    module.check_compatible(case.num_classes)
    if case.before_sampling is not None:
        case.before_sampling(module)
    indices, labels, images = generated(module, block(case.num_classes, seed=5, batch_size=BLOCK))
    assert images.dtype == torch.uint8 and tuple(images.shape) == (BLOCK, *module.image_shape)
    assert indices.tolist() == list(range(BLOCK))
    assert labels.tolist() == (torch.arange(BLOCK) % case.num_classes).tolist()
    _, _, split = generated(module, block(case.num_classes, seed=5, batch_size=4))  # batches of 4 and 2
    assert_same_uint8_images(split, images)  # another batch size: equal up to float32 rounding
    _, _, other_seed = generated(module, block(case.num_classes, seed=6, batch_size=BLOCK))
    assert not torch.equal(other_seed, images)


@pytest.mark.parametrize("case", GENERATORS, ids=IDS)
def test_fresh_equals_a_newly_built_module(case, workdir):
    module = build(case, workdir, seed=0)
    torch.manual_seed(1)
    fresh = module.fresh()
    built = build(case, workdir, seed=1)
    assert type(fresh) is type(built) and dict(fresh.hparams) == dict(built.hparams)
    assert fresh.image_shape == built.image_shape and fresh.num_classes == built.num_classes
    fresh_state, built_state = fresh.state_dict(), built.state_dict()
    assert list(fresh_state) == list(built_state)
    assert all(torch.equal(fresh_state[k], built_state[k]) for k in fresh_state)


@pytest.mark.parametrize("case", GENERATORS, ids=IDS)
def test_the_declared_trainer_needs_hold_in_one_training_step(case, workdir):
    module = build(case, workdir)
    needs = module.trainer_needs
    assert isinstance(needs, TrainerNeeds)
    assert module.automatic_optimization is not needs.manual_optimization
    side = module.training_resolution or module.image_shape[-1]
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, module.image_shape[0], side, side), dtype=torch.uint8, generator=generator)
    labels = torch.arange(4) % case.num_classes
    fit = trainer(max_steps=1, max_epochs=1, num_sanity_val_steps=0, limit_val_batches=0)  # (a generator with no
    # optimizer never counts a step)
    fit.fit(module, labelled_loader(images, labels, torch.zeros(4, dtype=torch.long), 4))
    assert needs.shown_metrics and all(name in fit.callback_metrics for name in needs.shown_metrics)
