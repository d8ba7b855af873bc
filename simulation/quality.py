"""Quality gates of the loop (DESIGN.md section 3): FID per generation, filters, sample sheets, q_t and u_t.

Everything here runs on rank 0 in the push stage, on the generation's whole block:

1. contact sheets of the raw block (sample ids for manual review) and, with ``pause_for_review``, a pause
   until the reviewer's reject list for that generation exists;
2. FID of the generator (all generated samples vs the real test images; real statistics computed once);
3. the generated data's quality q_t (share a reference classifier trained on real data assigns to the intended
   class) and imbalance u_t (total-variation distance between the block's subgroup distribution, read by the
   dataset's subgroup oracle, and the real training data's);
4. the filter chain (bottom r% dropped), then a sample sheet (a row per class) of what enters the stack.

The reference classifier is the generation-0 classifier named by ``reference_classifier`` (trained on real data
only, so the same reference serves every generation); the uncertainty filter's "previous classifier" is the
``filter_classifier`` of generation n - 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from common.errors import ConfigError
from common.image_grids import make_grid_image, save_contact_sheets
from filters import FilterContext, SampleFilter, apply_filters
from lightning_modules.classifier import ClassifierModule
from metrics.block_statistics import imbalance_u, majority_gain, quality_q, subgroup_counts
from metrics.fid import FIDScorer, find_inception_weights
from simulation.seeding import stage_seed
from simulation.subgroup_oracle import OracleConfig, fine_class_oracle
from simulation.summary import save_png


class ReviewPause(SystemExit):
    """Raised to stop the run cleanly so a reviewer can write the reject list; re-running resumes."""


@dataclass
class FIDConfig:
    """FID of each generation's generator.

    Args:
        enabled: compute FID every generation.
        extractor: "classifier" (penultimate features of the reference classifier: a domain FID, offline),
            "inception" (Inception-V3 weights from ``inception_weights`` or the torch hub cache),
            "auto" (inception when its weights file is found, else classifier).
        num_samples: samples of each side (generated, real test) used.
        inception_weights: local path of torch-fidelity's weights-inception-2015-12-05-6726825d.pth.
        batch_size: feature-extraction batch size.
    """

    enabled: bool = True
    extractor: Literal["auto", "classifier", "inception"] = "classifier"
    num_samples: int = 1000
    inception_weights: str | None = None
    batch_size: int = 256


@dataclass
class QualityConfig:
    """Args:
        fid: FID settings.
        reference_classifier: generation-0 classifier (by name) used as FID feature extractor and to measure q_t
            (default: the first classifier).
        filter_classifier: classifier (by name) whose previous-generation weights the uncertainty filter uses
            (default: the first classifier).
        contact_sheets: export PNG contact sheets with sample ids of every raw block (manual review).
        pause_for_review: stop after exporting a block's contact sheets until the manual filter's reject list
            for that generation exists (re-run the same command to continue).
        sheet_per_class: samples per class in the per-generation sample sheet.
        oracle: the learned subgroup oracle for u_t where the dataset has no pixel-level one (CIFAR-20/100); without
            either, u_t is reported as unavailable (null).
    """

    fid: FIDConfig | None = None
    reference_classifier: str | None = None
    filter_classifier: str | None = None
    contact_sheets: bool = True
    pause_for_review: bool = False
    sheet_per_class: int = 10
    oracle: OracleConfig | None = None


def load_classifier(checkpoint: str, device: str = "cpu") -> ClassifierModule:
    """A trained ClassifierModule from its Lightning checkpoint (tensors only, no pickled objects)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    hparams = {k: v for k, v in state["hyper_parameters"].items() if not k.startswith("_")}
    model = ClassifierModule(**hparams)
    model.load_state_dict(state["state_dict"])
    return model.eval().to(device)


class QualityGates:
    def __init__(self, config: QualityConfig, filters: list[SampleFilter]) -> None:
        self.config = config
        self.fid_config = config.fid or FIDConfig()
        self.filters = list(filters)
        self._fid: FIDScorer | None = None

    # ------------------------------------------------------------------------------------------- checks
    def _name(self, loop, configured: str | None, field: str) -> str:
        names = [c.label for c in loop.classifiers]
        name = configured or names[0]
        if name not in names:
            raise ConfigError(f"quality.{field}={name!r} is not a configured classifier: choose one of {names}")
        return name

    def validate(self, loop) -> None:
        self.reference_name = self._name(loop, self.config.reference_classifier, "reference_classifier")
        self.filter_name = self._name(loop, self.config.filter_classifier, "filter_classifier")
        fid = self.fid_config
        if fid.enabled and fid.num_samples < 2:
            raise ConfigError(f"quality.fid.num_samples must be >= 2, got {fid.num_samples}")
        if fid.enabled and fid.extractor == "inception":
            FIDScorer("inception", fid.num_samples, inception_weights=fid.inception_weights).check_available()
        for filt in self.filters:
            check = getattr(filt, "check_available", None)
            if callable(check):
                check()
            if hasattr(filt, "rejected_ids"):  # manual lists: unreadable files surface now (ids are checked later,
                for generation in range(1, loop.loop.generations + 1):  # against each block's samples)
                    filt.rejected_ids(generation)

    def setup(self, loop) -> None:
        self.device = "cuda" if torch.cuda.is_available() and loop.trainer_kwargs.get("accelerator") != "cpu" else "cpu"

    # ------------------------------------------------------------------------------------------- helpers
    def _checkpoint(self, loop, generation: int, name: str) -> str:
        """The classifier's best checkpoint (by validation loss), or its last one when it had no validation."""
        folder = loop.run_dir.stage_dir(generation, "classifiers", name, "checkpoints")
        best = folder / "best.ckpt"
        return str(best if best.exists() else folder / "last.ckpt")

    def _fid_scorer(self, loop, reference: ClassifierModule) -> FIDScorer:
        if self._fid is None:
            fid = self.fid_config
            extractor = fid.extractor
            if extractor == "auto":
                extractor = "inception" if find_inception_weights(fid.inception_weights) else "classifier"
            self._fid = FIDScorer(extractor, fid.num_samples, reference=reference,
                                  inception_weights=fid.inception_weights, batch_size=fid.batch_size,
                                  device=self.device, seed=loop.seed)
            self._fid.set_real(loop.dm.split_images("test", fid.num_samples, seed=loop.seed))
            print(f"[genbias] FID feature extractor: {self._fid.extractor_name}", flush=True)
        return self._fid

    @torch.no_grad()
    def _predicted(self, reference: ClassifierModule, images: torch.Tensor) -> torch.Tensor:
        """The reference classifier's predicted class of every image."""
        predicted = [reference(images[start : start + 512].to(self.device)).argmax(1).cpu()
                     for start in range(0, len(images), 512)]
        return torch.cat(predicted) if predicted else torch.zeros(0, dtype=torch.long)

    def _subgroup_oracle(self, loop):
        """``(images, labels) -> subgroups``: the dataset's pixel-level oracle, or a learned fine-class one."""
        source = loop.dm.source
        if source.num_groups == 0:
            return None
        if hasattr(source, "subgroup_oracle"):
            return lambda images, labels: source.subgroup_oracle(images)
        if self.config.oracle is None:
            return None
        if getattr(self, "_oracle", None) is None:
            self._oracle = fine_class_oracle(self.config.oracle, loop.dm.prepare(), source.num_classes,
                                             source.num_groups, loop.run_dir.path / "oracle",
                                             stage_seed(loop.seed, 0, "oracle"),
                                             str(loop.trainer_kwargs.get("accelerator", "cpu")))
        return self._oracle

    def _block_statistics(self, loop, images: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor,
                          predicted: torch.Tensor) -> dict:
        """q_t of the raw and the kept block; u_t and majority_gain (raw and kept) where subgroups can be read."""
        stats = {"quality_q": quality_q(predicted, labels), "quality_q_kept": quality_q(predicted[keep], labels[keep]),
                 "imbalance_u": None, "imbalance_u_kept": None, "majority_gain": None, "majority_gain_kept": None}
        source = loop.dm.source
        oracle = self._subgroup_oracle(loop)
        if oracle is None:
            return stats
        groups = oracle(images, labels)
        real = loop.dm.prepare()["train"]
        L, G = source.num_classes, source.num_groups
        real_counts = subgroup_counts(real.labels, real.groups, L, G)
        for suffix, mask in (("", torch.ones_like(keep)), ("_kept", keep)):
            block_counts = subgroup_counts(labels[mask], groups[mask], L, G)
            stats[f"imbalance_u{suffix}"] = imbalance_u(block_counts, real_counts)
            stats[f"majority_gain{suffix}"] = majority_gain(block_counts, real_counts)
        return stats

    # ------------------------------------------------------------------------------------------- the block
    def process_block(self, loop, generation: int, images: torch.Tensor, labels: torch.Tensor):
        source = loop.dm.source
        gen_dir = loop.run_dir.stage_dir(generation)
        sample_ids = torch.arange(len(labels))
        if self.config.contact_sheets:
            save_contact_sheets(images, sample_ids, gen_dir / "contact_sheets", labels=labels,
                                class_names=source.class_names)
        manual = [f for f in self.filters if hasattr(f, "rejected_ids")]
        if self.config.pause_for_review and manual and all(f.list_path(generation) is None for f in manual):
            where = manual[0].list_path(generation) or getattr(manual[0], "reject_dir", None)
            print(f"[genbias] paused for review: look at {gen_dir / 'contact_sheets'}, write the rejected sample "
                  f"ids of generation {generation} (one per line) to the manual filter's list "
                  f"(reject_dir: {where}, file gen_{generation}.txt), then re-run the same command.", flush=True)
            raise ReviewPause(0)
        reference = load_classifier(self._checkpoint(loop, 0, self.reference_name), self.device)
        report: dict = {}
        if self.fid_config.enabled:
            scorer = self._fid_scorer(loop, reference)
            report["fid"] = scorer.score(images)
            report["fid_extractor"] = scorer.extractor_name
            print(f"[genbias] FID generation {generation}: {report['fid']:.3f} ({scorer.extractor_name})",
                  flush=True)
            earlier = {int(g): b.get("fid") for g, b in (loop.run_dir.state.get("blocks") or {}).items()}
            row = {**{g: f for g, f in earlier.items() if f is not None}, generation: report["fid"]}
            print("[genbias] FID by generation (Table 1): " + " | ".join(
                f"{g}: {row[g]:.2f}" for g in sorted(row)), flush=True)
        predicted = self._predicted(reference, images)
        previous = load_classifier(self._checkpoint(loop, generation - 1, self.filter_name), self.device)
        context = FilterContext(generation=generation, class_names=source.class_names, previous_classifier=previous,
                                sample_ids=sample_ids, device=self.device, block_dir=str(gen_dir))
        keep, filter_report = apply_filters(self.filters, images, labels, context)
        report.update(filter_report)
        report.update(self._block_statistics(loop, images, labels, keep, predicted))
        kept_images, kept_labels = images[keep], labels[keep]
        grid = make_grid_image(kept_images, kept_labels, source.num_classes, per_class=self.config.sheet_per_class)
        save_png(grid, gen_dir / "samples.png")
        print(f"[genbias] filters kept {report['filter_kept']}/{len(labels)} samples of generation {generation}",
              flush=True)
        return kept_images, kept_labels, None, report

    def row_extras(self, loop, generation: int, model) -> dict:
        block = (loop.run_dir.state.get("blocks") or {}).get(str(generation), {})
        keys = ("fid", "filter_kept", "filter_dropped", "quality_q", "quality_q_kept", "imbalance_u",
                "imbalance_u_kept", "majority_gain", "majority_gain_kept")
        return {k: block.get(k) for k in keys}
