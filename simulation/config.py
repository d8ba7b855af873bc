"""Typed config sections of an experiment (the `loop:` and `classifiers:` keys of a YAML file)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ClassifierConfig:
    """One downstream classifier, retrained from scratch (or from ImageNet weights) at every generation.

    Args:
        arch: registry name: lenet, alexnet, vgg19, resnet18, resnet50, mobilenet_v3 (= _large), mobilenet_v3_small,
            deit_small, or the test archs tiny_cnn, tiny_vit.
        name: name in results (default: arch); must be unique.
        lr: Adam learning rate. The paper states 1e-1, which diverges for these networks with Adam; 1e-3 trains.
        weight_decay: Adam weight decay.
        max_epochs: maximum epochs per generation (paper: 50), with early stopping on validation loss.
        patience: early-stopping patience in epochs (0 disables early stopping).
        pretrained: start from ImageNet weights (local file or torch/HF cache; never downloaded at run time).
        weights_path: local ImageNet weights file (.pth or .safetensors) for pretrained: true.
        linear_probe: with pretrained, train only the new head.
        dropout: dropout probability of the architecture's dropout layers (None: its default).
        input_size: input side the images are resized to (None: native size, upsampled to the arch's minimum;
            224 with pretrained weights).
        batch_size: training batch size for this classifier (None: data.batch_size).
    """

    arch: str
    name: str | None = None
    lr: float = 1e-3
    weight_decay: float = 0.0
    max_epochs: int = 50
    patience: int = 5
    pretrained: bool = False
    weights_path: str | None = None
    linear_probe: bool = False
    dropout: float | None = None
    input_size: int | None = None
    batch_size: int | None = None

    @property
    def label(self) -> str:
        return self.name or self.arch


@dataclass
class LoopConfig:
    """The generational loop.

    Args:
        run_dir: where everything of this run lands (default: runs/<config file stem>/seed_<seed>).
        generations: number of generations after generation 0 (paper: 10 for MNIST/CIFAR, 4-5 for Hard ImageNet).
        samples_per_generation: S, samples generated per generation before filtering.
        stack_generations: stack capacity D in generations (D = stack_generations * S; paper: 3), used when
            data.stack_capacity is not set.
        generator_epochs: epochs the fresh generator trains each generation.
        generator_batch_size: generator training batch size (None: data.batch_size).
        overwrite: delete an existing run directory that holds another config (explicit opt-in).
    """

    run_dir: str | None = None
    generations: int = 10
    samples_per_generation: int = 1000
    stack_generations: int = 3
    generator_epochs: int = 10
    generator_batch_size: int | None = None
    overwrite: bool = False
