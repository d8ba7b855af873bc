"""Stage: select the kept samples of the generated block once, and push them into the FIFO stack.

The filter chain is applied to the scores the generation stage gathered (its scorers), and its selectors select now
(a reviewer's list of rejected ids is read now: with ``quality.pause_for_review`` the run stops here until that list
exists). Rank 0 measures the kept samples (q_t, u_t and the FID against the real statistics the generation stage
saved), pushes them and draws the sample sheet (as the classifiers see them); every rank then reopens the stack the
state records. The kept samples stream from the generated block's chunks into the stack's block file, a chunk at a
time: the raw block is never read into memory.
"""

from __future__ import annotations

import time

import torch

from common.distributed import is_rank_zero
from common.errors import ConfigError
from common.generated import GeneratedBlock
from common.image_grids import make_grid_image, save_grid_png
from filters import FilterContext, select_block
from metrics.block_statistics import block_statistics
from records.state import StageKey
from simulation.stages.base import RunContext, Stage, log
from simulation.stages.fid import kept_fid


class ReviewPause(SystemExit):
    """Raised to stop the run cleanly so a reviewer can write the reject list; re-running resumes."""


class PushBlock(Stage):
    def __init__(self, generation: int) -> None:
        self.generation = generation

    @property
    def key(self) -> StageKey:
        return StageKey.push(self.generation)

    def execute(self, context: RunContext) -> None:
        n, run_dir = self.generation, context.run_dir
        pending = [where for f in context.filters if (where := f.review_pending(n)) is not None]
        if context.quality.pause_for_review and pending:
            if is_rank_zero():
                log.info(f"paused for review: look at {run_dir.contact_sheet_dir(n)}, write the rejected "
                      f"sample ids of generation {n} (one per line) to {pending[0]}, then re-run the same command.")
            raise ReviewPause(0)
        state: dict = {}
        if is_rank_zero():
            state = self._select_and_push(context)
        context.finish(self.key, **state)
        stack = context.data.reopen_stack()
        check_stack_matches_state(context, stack)  # every rank sees the stack the state records
        context.progress(n, f"stack holds generations {stack.generations} ({len(stack)} samples)")

    def _select_and_push(self, context: RunContext) -> dict:
        n, run_dir, data, source = self.generation, context.run_dir, context.data, context.source
        block, keep, report = self.select(context)
        kept_ids = torch.nonzero(keep).flatten()
        kept_labels = block.scores.labels[kept_ids]
        report["fid_kept"] = kept_fid(context, n, block, kept_ids)
        if n not in data.stack.generations:  # idempotent when resuming after a crash mid-stage
            data.push_block_batches(block.kept(keep), len(kept_ids), block.image_shape, n)
        shown = _first_per_class(kept_labels, source.num_classes, context.quality.sheet_per_class)
        parts = list(block.read(kept_ids[shown]))  # a few samples per class
        images = torch.cat([p.images for p in parts]) if parts else torch.zeros((0, *block.image_shape), torch.uint8)
        grid = make_grid_image(source.classifier_view(images), kept_labels[shown], source.num_classes,
                               per_class=context.quality.sheet_per_class, class_names=source.class_names)
        save_grid_png(grid, run_dir.samples_sheet(n))
        log.info(f"filters kept {report['filter_kept']}/{len(keep)} samples of generation {n}")
        if report["filter_kept"] == 0:
            log.warning(f"generation {n}: the filters kept no sample, so its block adds nothing to the stack; "
                        f"look at {run_dir.contact_sheet_dir(n)} and at the filters' ratios")
        self._print_fid(context, run_dir.block_report(n).get("fid"), report["fid_kept"])
        return {"stack": data.stack.manifest, "blocks": run_dir.with_block_report(n, **report)}

    def select(self, context: RunContext) -> tuple[GeneratedBlock, torch.Tensor, dict]:
        """The generated block, the keep mask of the filter chain over its ids and the selection's report."""
        n, run_dir, source = self.generation, context.run_dir, context.source
        size = context.loop.samples_per_generation
        for needed in (run_dir.block_scores_path(n), run_dir.shard_dir(n)):
            if not needed.exists():
                raise ConfigError(f"generation {n}'s generated block is incomplete: {needed} is missing; the block "
                                  "cannot be selected again: start a new run (choose another loop.run_dir)")
        block = GeneratedBlock(run_dir.shard_dir(n), size, run_dir.block_scores_path(n))
        block.chunks()  # every sample is on disk before anything is selected
        saved = block.scores
        selection_context = FilterContext(generation=n, class_names=source.class_names, sample_ids=torch.arange(size),
                                          subgroups=saved.groups, real_subgroup_counts=context.real_subgroup_counts)
        keep, report = select_block(context.filters, saved.filter_scores, saved.labels, selection_context)
        report.update(block_statistics(saved.labels[keep], saved.predicted[keep], saved.groups[keep],
                                       context.real_subgroup_counts, suffix="_kept"))
        return block, keep, report

    def _print_fid(self, context: RunContext, fid: float | None, fid_kept: float | None) -> None:
        """Table 1's line: the raw block's FID (the paper's) and the kept samples', generation by generation."""
        if fid is None:
            return
        n = self.generation
        kept = "-" if fid_kept is None else f"{fid_kept:.3f}"
        log.info(f"FID generation {n}: raw block {fid:.3f}, kept samples {kept}")
        table = {g: context.run_dir.block_report(g) for g in range(1, n)}
        table = {g: (r["fid"], r.get("fid_kept")) for g, r in table.items() if r.get("fid") is not None}
        table[n] = (fid, fid_kept)
        cells = [f"{g}: {raw:.2f} / " + ("-" if k is None else f"{k:.2f}") for g, (raw, k) in sorted(table.items())]
        log.info("FID by generation (Table 1; raw block / kept): " + " | ".join(cells))


def check_stack_matches_state(context: RunContext, stack) -> None:
    """ConfigError when the stack on disk is not the one the run state records (never train on a wrong stack)."""
    problems = context.run_dir.stack_differences(stack.manifest)
    if problems:
        raise ConfigError(
            f"the synthetic stack in {stack.root} does not match the run state {context.run_dir.state_path}: "
            f"{'; '.join(problems)}. Re-run the same command with --loop.rebuild_stack true to re-create it from the "
            "generated blocks kept in the generations' shards folders (or restore the stack folder from a backup)"
        )


def rebuild_stack(context: RunContext) -> None:
    """Re-create the stack the run state records, from each generation's shards and scores (rank 0).

    The damaged stack folder is set aside (renamed), the recorded generations are selected and pushed again, oldest
    first, and the result must match the recorded checksums exactly, or nothing is trusted.
    """
    run_dir, data = context.run_dir, context.data
    recorded = [block["generation"] for block in run_dir.state.stack_blocks]
    if run_dir.stack_dir.exists():
        aside = run_dir.stack_dir.with_name(f"stack.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        run_dir.stack_dir.rename(aside)
        log.info(f"rebuild_stack: the previous stack folder is kept as {aside}")
    data.open_stack(run_dir.stack_dir)
    for generation in recorded:
        block, keep, _ = PushBlock(generation).select(context)
        data.push_block_batches(block.kept(keep), int(keep.sum()), block.image_shape, generation)
    problems = run_dir.stack_differences(data.stack.manifest)
    if problems:
        raise ConfigError(f"the rebuilt stack differs from the one the run state records ({'; '.join(problems)}): "
                          "were the manual reject lists changed? Restore them, or start a new run")
    log.info(f"rebuild_stack: re-created generations {recorded} of the stack; checksums match the run state")


def _first_per_class(labels: torch.Tensor, num_classes: int, per_class: int) -> torch.Tensor:
    """Positions of the first ``per_class`` samples of every class, in order (what the sample sheet shows)."""
    chosen = [torch.nonzero(labels == c).flatten()[:per_class] for c in range(num_classes)]
    return torch.cat(chosen).sort().values if chosen else torch.zeros(0, dtype=torch.long)
