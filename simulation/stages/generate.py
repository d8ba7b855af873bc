"""Stage: the trained generator generates the block, and the quality gates score it on every rank.

``trainer.predict`` splits the block across ranks in aligned batches; each rank's ShardWriter writes every batch
as a checksummed chunk file as it comes, and the gates (Lightning callbacks) score it as it is generated: filter
scores, FID, the reference classifier's predictions (q_t) and the subgroup oracle (u_t). The gathered per-sample
results are saved next to the chunks, so the push stage can select the kept samples once, after any manual review;
so are the FID's real statistics, against which the push stage measures the kept samples. Generated images are
stored as generated; every gate that runs a classifier on them (and the contact sheets) sees them through the
classifiers' view.

An interrupted stage resumes: the chunks it completed are kept, read back and replayed to the gates instead of
being generated again (samples are seeded per index, so the block and its scores are those of an uninterrupted
run).
"""

from __future__ import annotations

import lightning as L
from safetensors.torch import save

from callbacks.block_statistics import BlockStatistics
from callbacks.contact_sheets import ContactSheets
from callbacks.filter_scores import FilterScores
from callbacks.shard_writer import ShardWriter
from common.distributed import is_rank_zero
from common.io import atomic_write_bytes
from common.seeds import stage_seed
from records.layout import generation_name
from records.state import StageKey
from simulation.stages.base import RunContext, Stage, log
from simulation.stages.fid import fid_gate
from simulation.stages.oracle import subgroup_oracle


class GenerateBlock(Stage):
    def __init__(self, generation: int) -> None:
        self.generation = generation

    @property
    def key(self) -> StageKey:
        return StageKey.generate(self.generation)

    def execute(self, context: RunContext) -> None:
        n, run_dir, source = self.generation, context.run_dir, context.source
        size = context.loop.samples_per_generation
        context.progress(n, f"generating {size} samples")
        seed = stage_seed(context.seed, n, "generate")
        L.seed_everything(seed, workers=True, verbose=False)
        checkpoint = run_dir.resume_checkpoint(run_dir.generator_dir(n))
        if checkpoint is None:
            raise RuntimeError(f"the generator stage of generation {n} is recorded as done but "
                               f"{run_dir.generator_checkpoint(n)} is missing")
        generator = context.generator.fresh()
        labels = context.data.generation_labels(size, seed)
        shard_dir = run_dir.shard_dir(n)  # chunks an interrupted attempt completed are kept (ShardWriter.setup)

        view = source.classifier_view
        scores = FilterScores(context.filters, n, source.class_names,
                              str(run_dir.classifier_checkpoint(n - 1, context.filter_classifier)), view)
        statistics = BlockStatistics(str(run_dir.classifier_checkpoint(0, context.reference_classifier)),
                                     context.real_subgroup_counts, subgroup_oracle(context), view)
        gates = [scores, statistics]
        fid = fid_gate(context, n)
        if fid is not None:
            gates.append(fid[0])
        writer = ShardWriter(shard_dir, size, context.data.eval_batch_size, gates=gates)
        callbacks = [*gates, writer]  # the writer last: a batch is on disk only once every gate has seen it
        if context.quality.contact_sheets:
            callbacks.append(ContactSheets(shard_dir, run_dir.contact_sheet_dir(n), labels, source.class_names, view))
        trainer = context.trainers.build(run_dir.generator_dir(n), name=generation_name(n), version="generate",
                                         label=context.stage_label(n, "generating"), callbacks=callbacks,
                                         enable_checkpointing=False, logger=False)  # logs nothing
        trainer.predict(generator, datamodule=context.data.for_generation(labels, seed, skip=writer.done_batches),
                        return_predictions=False, ckpt_path=checkpoint, weights_only=True)

        report = dict(statistics.statistics)
        if fid is not None:
            report.update(fid=fid[0].fid, fid_extractor=fid[1].name)
        if is_rank_zero():
            statistics.block_scores(scores.scores).save(run_dir.block_scores_path(n))
            if fid is not None:
                real = {k: v.contiguous() for k, v in fid[0].real_statistics.items()}
                atomic_write_bytes(run_dir.fid_real_statistics_path(n), save(real))
                log.info(f"FID generation {n}: {report['fid']:.3f} ({report['fid_extractor']}, raw block vs "
                         "real training images)")
        context.finish(self.key, blocks=run_dir.with_block_report(n, **report))
