"""What a generator's training stage needs from the loop's Trainer, declared by the generator as data.

The loop reads it instead of treating every generator like the GAN: manual optimisation, DDP's
``find_unused_parameters``, the trainer precisions it cannot train under, and the logged losses worth a progress line
(names only, so renaming a logged metric is a one-line change in the generator).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainerNeeds:
    """Args:
    manual_optimization: ``training_step`` steps its optimisers itself (a GAN's two optimisers).
    find_unused_parameters: under DDP, some parameters get no gradient in a backward pass (the GAN's
        discriminator during the generator's step), so the stage runs ``ddp_find_unused_parameters_true``.
    unsupported_precisions: ``trainer.precision`` values it cannot train under; validation refuses them.
    shown_metrics: names of the logged metrics each progress line shows, in order.
    """

    manual_optimization: bool = False
    find_unused_parameters: bool = False
    unsupported_precisions: tuple[str, ...] = ()
    shown_metrics: tuple[str, ...] = ()
