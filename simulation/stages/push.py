"""Stage: select the kept samples of the generated block once, and push them into the FIFO stack.

The filter chain is applied to the scores the generation stage gathered (and to a reviewer's list of rejected ids,
read now: with ``quality.pause_for_review`` the run stops here until that list exists). Rank 0 pushes the kept
samples and draws the sample sheet; every rank then reopens the stack the state records.
"""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from callbacks.shard_writer import read_block
from common.distributed import is_rank_zero
from common.image_grids import make_grid_image, save_grid_png
from filters.base import FilterContext, select_block
from metrics.block_statistics import block_statistics
from simulation.stages.base import RunContext, Stage
from simulation.stages.generate import SCORE_PREFIX


class ReviewPause(SystemExit):
    """Raised to stop the run cleanly so a reviewer can write the reject list; re-running resumes."""


class PushBlock(Stage):
    def __init__(self, generation: int) -> None:
        self.generation = generation

    @property
    def key(self) -> str:
        return f"g{self.generation}/push"

    def execute(self, context: RunContext) -> None:
        n, run_dir = self.generation, context.run_dir
        pending = [where for f in context.filters if (where := f.review_pending(n)) is not None]
        if context.quality.pause_for_review and pending:
            if is_rank_zero():
                print(f"[genbias] paused for review: look at {run_dir.contact_sheet_dir(n)}, write the rejected "
                      f"sample ids of generation {n} (one per line) to {pending[0]}, then re-run the same command.",
                      flush=True)
            raise ReviewPause(0)
        state: dict = {}
        if is_rank_zero():
            state = self._select_and_push(context)
        context.finish(self.key, **state)
        stack = context.data.reopen_stack()
        context.progress(n, f"stack holds generations {stack.generations} ({len(stack)} samples)")

    def _select_and_push(self, context: RunContext) -> dict:
        n, run_dir, source, data = self.generation, context.run_dir, context.source, context.data
        size = context.loop.samples_per_generation
        saved = load_file(str(run_dir.block_scores_path(n)))
        labels = saved["label"]
        scores = {k.removeprefix(SCORE_PREFIX): v for k, v in saved.items() if k.startswith(SCORE_PREFIX)}
        selection_context = FilterContext(generation=n, class_names=source.class_names, sample_ids=torch.arange(size))
        keep, report = select_block(context.filters, scores, labels, selection_context)
        report.update(block_statistics(labels[keep], saved["predicted"][keep], saved["group"][keep],
                                       context.real_subgroup_counts, suffix="_kept"))
        images, _ = read_block(run_dir.shard_dir(n), size)
        if n not in data.stack.generations:  # idempotent when resuming after a crash mid-stage
            data.push_block(images[keep], labels[keep], n)
        grid = make_grid_image(images[keep], labels[keep], source.num_classes,
                               per_class=context.quality.sheet_per_class, class_names=source.class_names)
        save_grid_png(grid, run_dir.samples_sheet(n))
        print(f"[genbias] filters kept {report['filter_kept']}/{size} samples of generation {n}", flush=True)
        return {"stack": data.stack.manifest, "blocks": run_dir.with_block_report(n, **report)}
