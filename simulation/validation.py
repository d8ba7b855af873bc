"""One pass over the resolved configuration, before any work, that reports every problem at once.

A user missing the data, the generator weights and a classifier's weights learns all three from one run; each
message names the field and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from common.errors import ConfigError
from filters import Scorer
from filters.uncertainty import dropout_modules
from lightning_modules.networks.registry import get_arch, pretrained_weights_file
from metrics.fid import check_inception_weights
from simulation.config import ClassifierConfig
from simulation.stages.base import RunContext


def _loop_problems(context: RunContext) -> None:
    loop = context.loop
    if loop.generations < 0:
        raise ConfigError(f"loop.generations must be >= 0, got {loop.generations}")
    if loop.classifier_lr is not None and not loop.classifier_lr > 0:
        raise ConfigError(f"loop.classifier_lr must be > 0 (null: each classifier's own lr), got {loop.classifier_lr}")
    strategy = context.trainers.strategy
    if "spawn" in strategy:
        raise ConfigError(f"trainer.strategy={strategy!r} is not supported (spawned processes double-count "
                          "metric states): use strategy: ddp")
    if loop.generations == 0:
        return
    if loop.samples_per_generation <= 0:
        raise ConfigError(f"loop.samples_per_generation must be > 0, got {loop.samples_per_generation}")
    if loop.generator_epochs <= 0:
        raise ConfigError(f"loop.generator_epochs must be > 0, got {loop.generator_epochs}")
    budget = context.data.regime.capacity
    if budget is not None and budget < loop.samples_per_generation:
        raise ConfigError(
            f"data.regime.capacity {budget} is smaller than one generation's block "
            f"({loop.samples_per_generation} samples): raise data.regime.capacity, unset it (the stack then keeps "
            "data.regime.window whole generations) or lower loop.samples_per_generation"
        )
    if context.generator is None:
        raise ConfigError("loop.generations > 0 needs a generator: set model.class_path "
                          "(a GeneratorModule subclass; python cli.py fit --help lists them)")


def _classifier_problems(context: RunContext) -> None:
    if not context.classifiers:
        raise ConfigError("no classifiers configured: add at least one entry under classifiers:")
    names = [c.label for c in context.classifiers]
    if len(set(names)) != len(names):
        raise ConfigError(f"classifier names must be unique, got {names}: set name: for repeated archs")
    missing_weights = []
    for c in context.classifiers:
        get_arch(c.arch)
        if c.max_epochs <= 0:
            raise ConfigError(f"classifier {c.label!r}: max_epochs must be > 0, got {c.max_epochs}")
        if c.lr <= 0:
            raise ConfigError(f"classifier {c.label!r}: lr must be > 0, got {c.lr}")
        if c.patience < 0:
            raise ConfigError(f"classifier {c.label!r}: patience must be >= 0, got {c.patience}")
        if c.pretrained:
            path, hint = pretrained_weights_file(c.arch, c.weights_path)
            if path is None:
                missing_weights.append(f"classifier {c.label!r}: ImageNet weights not found: {hint}")
    if missing_weights:
        raise ConfigError("\n".join(missing_weights))


def _batch_problems(context: RunContext) -> None:
    """With data.batch_size_is_global, every training batch must split evenly over the devices."""
    world, data = context.trainers.world_size, context.data
    if not data.batch_size_is_global or world <= 1:
        return
    batches = [("data.batch_size", data.batch_size)]
    batches += [(f"classifier {c.label!r}'s batch_size", c.batch_size) for c in context.classifiers if c.batch_size]
    if context.loop.generations > 0 and context.loop.generator_batch_size:
        batches.append(("loop.generator_batch_size", context.loop.generator_batch_size))
    if context.quality.oracle is not None:
        batches.append(("quality.oracle.batch_size", context.quality.oracle.batch_size))
    wrong = [f"{name} {value}" for name, value in batches if value % world]
    if wrong:
        raise ConfigError(
            f"data.batch_size_is_global: {', '.join(wrong)} cannot be split evenly over {world} devices: make each "
            f"global batch size a multiple of {world}, or run on a number of devices that divides it")


def _generator_problems(context: RunContext) -> None:
    if context.generator is None or context.loop.generations == 0:
        return
    context.generator.check_compatible(context.source.num_classes)
    context.source.check_stack_shape(context.generator.image_shape)
    context.generator.check_precision(str(context.trainers.trainer_kwargs.get("precision") or "32-true"))
    context.generator.validate()


def _quality_problems(context: RunContext) -> None:
    if not context.classifiers:
        return
    names = [c.label for c in context.classifiers]
    for field in ("reference_classifier", "filter_classifier"):
        name = getattr(context.quality, field)
        if name is not None and name not in names:
            raise ConfigError(f"quality.{field}={name!r} is not a configured classifier: choose one of {names}")
    if context.quality.oracle is not None:
        get_arch(context.quality.oracle.arch)


def _fid_problems(context: RunContext) -> None:
    fid = context.fid
    if fid.enabled and fid.num_samples < 2:
        raise ConfigError(f"quality.fid.num_samples must be >= 2, got {fid.num_samples}")
    if fid.enabled and fid.extractor == "inception" and context.loop.generations > 0:
        check_inception_weights(fid.inception_weights)


def has_dropout(classifier: ClassifierConfig, source) -> bool:
    """Whether the classifier's network has a dropout module with p > 0 (built on the meta device: no memory, no
    weights; ImageNet weights do not change which modules a network has)."""
    with torch.device("meta"):
        network = get_arch(classifier.arch).build(max(source.num_classes, 1), source.image_shape[0] or 3,
                                                  classifier.dropout)
    return bool(dropout_modules(network))


def _mc_dropout_problem(context: RunContext, filter_name: str) -> str | None:
    """The uncertainty filter's classifier must be able to run MC dropout, or its scores are one deterministic pass."""
    chosen = next((c for c in context.classifiers if c.label == context.filter_classifier), None)
    try:
        if chosen is None or has_dropout(chosen, context.source):
            return None
        with_dropout = [c.label for c in context.classifiers if c is not chosen and has_dropout(c, context.source)]
    except ConfigError:  # an unknown architecture: reported by the classifier checks
        return None
    fix = (f"set quality.filter_classifier to one that has ({', '.join(with_dropout)})" if with_dropout else
           "add a classifier with dropout (e.g. {arch: vgg19}, or dropout: 0.1 on lenet) and name it in "
           "quality.filter_classifier")
    return (f"{filter_name} scores with MC dropout, but quality.filter_classifier {chosen.label!r} ({chosen.arch}) has "
            f"no dropout module with p > 0, so every pass would be the same: {fix}")


def _unfillable_ratio_problems(context: RunContext) -> list[str]:
    """A per-class quantile filter whose ratio the block cannot fill drops nothing: with n samples of a class, the
    bottom r is ceil((1 - r) n) = n kept unless r n >= 1. Counted along the chain (each filter sees the survivors),
    from the block's S / L samples per class (the labels follow the real class proportions)."""
    num_classes = max(context.source.num_classes, 1)
    per_class = context.loop.samples_per_generation / num_classes
    problems = []
    for index, filt in enumerate(context.filters):
        if not isinstance(filt, Scorer) or not filt.per_class or filt.mode != "quantile" or filt.ratio == 0:
            continue
        n = math.ceil(per_class)
        kept = min(n, math.ceil(round((1.0 - filt.ratio) * n, 9)))
        if kept == n:
            fix = (f"raise loop.samples_per_generation to at least {math.ceil(1 / filt.ratio) * num_classes} or the "
                   "ratio" if index == 0 else "raise loop.samples_per_generation or this filter's ratio")
            problems.append(
                f"filters[{index}] {type(filt).__name__} ratio {filt.ratio} drops no sample: a class reaches it with "
                f"about {n} generated samples (loop.samples_per_generation {context.loop.samples_per_generation} over "
                f"{num_classes} classes{', after the filters before it' if index else ''}) and ceil((1 - r) x {n}) = "
                f"{n} keeps them all: {fix}")
        per_class = kept
    return problems


def _filter_problems(context: RunContext) -> None:
    """Every filter's missing weights or files, prompts the dataset cannot fill, and an uncertainty filter without
    dropout to sample, in one message."""
    problems = []
    for filt in context.filters:
        try:
            filt.check_available()
            filt.check_dataset(context.source.class_names)
        except ConfigError as err:
            problems.append(str(err))
        if filt.needs.mc_dropout and context.classifiers:
            problem = _mc_dropout_problem(context, type(filt).__name__)
            if problem is not None and problem not in problems:
                problems.append(problem)
        if filt.needs.subgroups and context.source.num_groups == 0:
            problems.append(f"{type(filt).__name__} needs subgroups, and {context.source.name} has none: remove it")
        elif filt.needs.subgroups and context.source.facts.oracle == "learned" and context.quality.oracle is None:
            problems.append(f"{type(filt).__name__} needs the subgroup of every generated image, and "
                            f"{context.source.name}'s cannot be read from the pixels: set quality.oracle (a learned "
                            "subgroup oracle, e.g. {arch: resnet18})")
    if context.loop.generations > 0 and context.loop.samples_per_generation > 0:
        problems += _unfillable_ratio_problems(context)
    if problems:
        raise ConfigError("\n".join(problems))


def _data_problems(context: RunContext) -> None:
    """The data module's settings, then (once they are sound) whether the ``fresh`` regime's pool suffices."""
    context.data.validate()
    fresh_problem = context.data.fresh_pool_problem(context.loop.generations)
    if fresh_problem:
        raise ConfigError(fresh_problem)
    generator = context.generator
    if generator is not None and generator.cache_latents and context.data.regime.stack_policy.draws_fresh_real:
        raise ConfigError("model.init_args.cache_latents encodes the whole real training split once for every "
                          "generation, but data.regime.policy 'fresh' trains each generation on new real samples: "
                          "set model.init_args.cache_latents: false with the fresh regime")


def validate_run(context: RunContext, extra_problems: list[str] | None = None) -> None:
    """Raise one ConfigError listing every problem of the configuration (nothing is created before)."""
    problems: list[str] = list(extra_problems or [])
    checks: list[Callable[[RunContext], None]] = [_loop_problems, _classifier_problems,
                                                  _data_problems, _batch_problems, _generator_problems,
                                                  _quality_problems, _fid_problems, _filter_problems]
    for check in checks:
        try:
            check(context)
        except ConfigError as err:
            problems.append(str(err))
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"{len(problems)} problems in the configuration:\n" +
                          "\n".join(f"({i}) {p}" for i, p in enumerate(problems, start=1)))
