"""Generation-stage gate: every rank scores the samples it generated with each filter; the scores are gathered.

Filters score each batch as it is generated (CLIP on the rank's own GPU, the previous classifier's MC dropout on
the batch); at the end of generation every rank holds every sample's score in id order. Which samples are kept is
then decided once from these scores (``filters.select_block``), in the push stage, after any manual review.
A filter that runs the previous classifier sees the images as the classifiers do (``classifier_view``); the others
(CLIP) see them as generated.
"""

from __future__ import annotations

import torch

from callbacks.block_gate import BlockGate
from common.distributed import gather_by_index
from common.generated import GeneratedBatch
from common.image_views import ImageView
from filters.base import FilterContext, SampleFilter, filter_names
from lightning_modules.classifier import ClassifierModule


class FilterScores(BlockGate):
    """Scores of every automatic filter (hand-reviewed ones are scored at selection from the ids)."""

    def __init__(self, filters: list[SampleFilter], generation: int, class_names: list[str],
                 previous_classifier_checkpoint: str | None = None, classifier_view: ImageView | None = None) -> None:
        named = zip(filter_names(filters), filters)
        self.classifier_view = classifier_view
        self.filters = {name: filt for name, filt in named if not filt.scored_at_selection}
        self.generation, self.class_names = int(generation), list(class_names)
        self.previous_checkpoint = previous_classifier_checkpoint
        self.previous_classifier: ClassifierModule | None = None
        #: after generation: every sample's score per filter name, ordered by sample id
        self.scores: dict[str, torch.Tensor] = {}
        self._ids: list[torch.Tensor] = []
        self._scores: dict[str, list[torch.Tensor]] = {}

    def on_predict_start(self, trainer, pl_module) -> None:
        self._ids, self._scores = [], {name: [] for name in self.filters}
        needs = any(f.needs_previous_classifier for f in self.filters.values())
        if needs and self.previous_checkpoint is not None:
            self.previous_classifier = ClassifierModule.from_checkpoint(self.previous_checkpoint, pl_module.device)

    def consume(self, batch: GeneratedBatch, pl_module) -> None:
        ids, labels, images = batch.ids, batch.labels, batch.images
        context = FilterContext(generation=self.generation, class_names=self.class_names, sample_ids=ids,
                                previous_classifier=self.previous_classifier, device=pl_module.device)
        viewed = self.classifier_view(images) if self.classifier_view is not None else images
        for name, filt in self.filters.items():
            seen = viewed if filt.needs_previous_classifier else images
            self._scores[name].append(filt.score(seen, labels, context).detach().cpu().double().reshape(-1))
        self._ids.append(ids.cpu())

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        ids = torch.cat(self._ids) if self._ids else torch.zeros(0, dtype=torch.long)
        local = {name: torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
                 for name, parts in self._scores.items()}
        _, self.scores = gather_by_index(ids, local)
