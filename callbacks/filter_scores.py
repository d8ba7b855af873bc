"""Generation-stage gate: every rank scores the samples it generated with each scorer; the scores are gathered.

Scorers score each batch as it is generated (CLIP on the rank's own GPU, the previous classifier's MC dropout on
the batch); at the end of generation every rank holds every sample's score in id order. Which samples are kept is
then decided once from these scores (``filters.select_block``), in the push stage, where the selectors (a manual
review, the subgroup balance) select too. A scorer that needs the previous classifier sees the images as the
classifiers do (``classifier_view``); the others (CLIP) see them as generated.
"""

from __future__ import annotations

import torch

from callbacks.block_gate import BlockGate
from common.distributed import gather_by_index
from common.generated import GeneratedBatch
from common.image_views import ImageView
from filters import FilterContext, FilterStep, Scorer, filter_names
from lightning_modules.classifier import ClassifierModule


class FilterScores(BlockGate):
    """Scores of every scorer of the chain (its selectors select later, at the push stage)."""

    def __init__(self, filters: list[FilterStep], generation: int, class_names: list[str],
                 previous_classifier_checkpoint: str | None = None, classifier_view: ImageView | None = None) -> None:
        named = zip(filter_names(filters), filters)
        self.classifier_view = classifier_view
        self.scorers = {name: filt for name, filt in named if isinstance(filt, Scorer)}
        self.generation, self.class_names = int(generation), list(class_names)
        self.previous_checkpoint = previous_classifier_checkpoint
        self.previous_classifier: ClassifierModule | None = None
        #: after generation: every sample's score per scorer name, ordered by sample id
        self.scores: dict[str, torch.Tensor] = {}
        self._ids: list[torch.Tensor] = []
        self._scores: dict[str, list[torch.Tensor]] = {}

    def on_predict_start(self, trainer, pl_module) -> None:
        self._ids, self._scores = [], {name: [] for name in self.scorers}
        needs = any(scorer.needs.previous_classifier for scorer in self.scorers.values())
        if needs and self.previous_checkpoint is not None:
            self.previous_classifier = ClassifierModule.from_checkpoint(self.previous_checkpoint, pl_module.device)

    def consume(self, batch: GeneratedBatch, pl_module) -> None:
        ids, labels, images = batch.ids, batch.labels, batch.images
        context = FilterContext(generation=self.generation, class_names=self.class_names, sample_ids=ids,
                                previous_classifier=self.previous_classifier, device=pl_module.device)
        viewed = self.classifier_view(images) if self.classifier_view is not None else images
        for name, scorer in self.scorers.items():
            seen = viewed if scorer.needs.previous_classifier else images
            self._scores[name].append(scorer.score(seen, labels, context).detach().cpu().double().reshape(-1))
        self._ids.append(ids.cpu())

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        ids = torch.cat(self._ids) if self._ids else torch.zeros(0, dtype=torch.long)
        local = {name: torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
                 for name, parts in self._scores.items()}
        _, self.scores = gather_by_index(ids, local)
