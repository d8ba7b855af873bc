"""What the generator base class guarantees every generator: fresh() never guesses hyper-parameters, and a declared
precision limit is refused with one line naming it."""

from __future__ import annotations

import pytest
import torch

from common.errors import ConfigError
from lightning_modules.generator import GeneratorModule
from lightning_modules.trainer_needs import TrainerNeeds


class Forgetful(GeneratorModule):
    """Forgets save_hyperparameters(): fresh() cannot know its image shape."""

    trainer_needs = TrainerNeeds(unsupported_precisions=("16-true",), shown_metrics=("loss",))

    def __init__(self, num_classes: int, image_shape: tuple[int, int, int]) -> None:
        super().__init__(num_classes, image_shape)
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def generate(self, labels, indices, seeds):
        return torch.zeros((len(labels), *self.image_shape), dtype=torch.uint8)


class Careful(Forgetful):
    def __init__(self, num_classes: int, image_shape: tuple[int, int, int]) -> None:
        super().__init__(num_classes, image_shape)
        self.save_hyperparameters()


def test_fresh_refuses_to_guess_hyperparameters_it_was_not_given():
    with pytest.raises(TypeError, match=r"lack \['num_classes', 'image_shape'\]; call self.save_hyperparameters"):
        Forgetful(2, (3, 8, 8)).fresh()
    fresh = Careful(2, (3, 8, 8)).fresh()
    assert type(fresh) is Careful and (fresh.num_classes, fresh.image_shape) == (2, (3, 8, 8))


def test_a_declared_precision_limit_is_one_clear_error():
    module = Careful(2, (3, 8, 8))
    with pytest.raises(ConfigError, match=r"Careful cannot train with trainer.precision=16-true: .*\['16-true'\]"):
        module.check_precision("16-true")
    module.check_precision("bf16-mixed")  # any other precision passes
    assert module.automatic_optimization  # no manual optimisation declared


def test_a_generator_without_generate_cannot_be_built():
    """``generate`` is abstract for real: the base is an ABC, so a plug-in that forgets it fails when it is built,
    not when the loop first samples a block."""
    from lightning_modules.generator import GeneratorModule

    class Forgetful(GeneratorModule):
        def training_step(self, batch, batch_idx):
            return None

    with pytest.raises(TypeError, match="abstract method.*generate"):
        Forgetful(num_classes=2, image_shape=(1, 4, 4))
