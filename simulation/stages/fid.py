"""The FID's feature extractor and the view both of its sides are compared in, shared by the generation stage (the
raw block: ``fid``, Table 1's) and the push stage (the samples the filters kept: ``fid_kept``).

The classifier-feature FID compares images as the classifiers see them (``source.classifier_view``): the reference
classifier was trained on that view. Inception compares them at the resolution the generated images are stored at,
the real images prepared like the generator's training images (shorter side resized, centre crop), so that neither
side is distorted in a way the other is not. The real side is the same seeded subset of the real training images
every generation; its statistics are saved next to the block so the kept samples are measured against them, and are
computed once per run: a later generation reads the statistics an earlier one saved with the same extractor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from safetensors.torch import load_file
from torch import nn

from callbacks.generator_fid import GeneratorFID
from common.generated import GeneratedBlock
from common.image_views import ImageView
from lightning_modules.classifier import ClassifierModule
from metrics.fid import (
    ClassifierFeatures,
    InceptionFeatures,
    check_inception_weights,
    fid_against_real_statistics,
    fid_subset,
    find_inception_weights,
)
from simulation.stages.base import RunContext

INCEPTION = "inception-v3"


@dataclass
class FIDExtractor:
    """Which features the FID compares (``name`` as recorded in the block report) and in which view."""

    name: str
    features: Callable[[torch.device], nn.Module]
    view: ImageView


def fid_extractor(context: RunContext, name: str | None = None) -> FIDExtractor:
    """The configured extractor (``auto``: Inception when its weights are found), or the one named ``name`` (what the
    generation stage used, so the push stage measures the kept samples with the same features)."""
    fid = context.fid
    if name is not None:
        use_inception = name == INCEPTION
    else:
        use_inception = fid.extractor == "inception" or (
            fid.extractor == "auto" and find_inception_weights(fid.inception_weights) is not None)
    if use_inception:
        weights = check_inception_weights(fid.inception_weights)

        def inception(device: torch.device) -> nn.Module:
            return InceptionFeatures(weights).to(device)

        return FIDExtractor(INCEPTION, inception, ImageView.shorter_side(context.generator.image_shape[-1]))
    checkpoint = str(context.run_dir.classifier_checkpoint(0, context.reference_classifier))
    image_shape = context.source.image_shape

    def classifier(device: torch.device) -> nn.Module:
        return ClassifierFeatures(ClassifierModule.from_checkpoint(checkpoint, device), image_shape)

    return FIDExtractor(f"classifier:{context.reference_classifier}", classifier, context.source.classifier_view)


def fid_gate(context: RunContext, generation: int) -> tuple[GeneratorFID, FIDExtractor] | None:
    """The generation stage's FID gate against the real training images, and its extractor (None when FID is off).
    The real side's statistics come from an earlier generation of the run where one saved them with this extractor."""
    fid = context.fid
    if not fid.enabled:
        return None
    extractor = fid_extractor(context)
    real = context.data.viewed_split("train", extractor.view)
    real_ids = context.data.subset_ids("train", fid.num_samples, seed=context.seed)
    gate = GeneratorFID(extractor.features, real, real_ids, extractor.view, context.loop.samples_per_generation,
                        fid.num_samples, context.seed, batch_size=fid.batch_size,
                        saved_real_statistics=saved_real_statistics(context, generation, extractor.name))
    return gate, extractor


def saved_real_statistics(context: RunContext, generation: int, extractor: str) -> dict[str, torch.Tensor] | None:
    """The real side's statistics the latest earlier generation saved with ``extractor``; None if none did."""
    run_dir = context.run_dir
    for earlier in range(generation - 1, 0, -1):
        path = run_dir.fid_real_statistics_path(earlier)
        if run_dir.block_report(earlier).get("fid_extractor") == extractor and path.is_file():
            return load_file(str(path))
    return None


def kept_fid(context: RunContext, generation: int, block: GeneratedBlock, kept_ids: torch.Tensor) -> float | None:
    """FID of a seeded subset (at most ``num_samples``) of the kept samples (``kept_ids`` of ``block``) against the
    real statistics the generation stage saved; None without FID or with fewer than 2 kept samples. Rank 0, on its
    own device, reading the chosen samples a chunk at a time."""
    fid, run_dir = context.fid, context.run_dir
    path = run_dir.fid_real_statistics_path(generation)
    if not fid.enabled or not path.exists():
        return None
    chosen = fid_subset(len(kept_ids), fid.num_samples, context.seed, salt=2)
    if len(chosen) < 2:
        return None
    extractor = fid_extractor(context, run_dir.block_report(generation).get("fid_extractor"))
    device = context.trainers.host_device()
    batches = (extractor.view(batch.images) for batch in block.rebatched(kept_ids[chosen], fid.batch_size))
    return fid_against_real_statistics(extractor.features(device), load_file(str(path)), batches, device)
