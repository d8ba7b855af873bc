"""Stages: the sequence of one generation, skipping what the state records as done, and the push stage's selection."""

import pytest
import torch
from safetensors.torch import save_file

from common.generated import SCORE_PREFIX, GeneratedBatch, write_chunk
from common.image_views import ImageView
from datamodules.base import ImageSplit, RealDataSource
from datamodules.facts import DatasetFacts
from datamodules.generational import GenerationalDataModule
from datamodules.regime import DataRegime
from filters import ManualRejectFilter, Scorer
from records.run_directory import RunDirectory
from records.state import StageKey
from simulation.config import ClassifierConfig, LoopConfig, QualityConfig
from simulation.loop import SimulationLoop
from simulation.stages import PushBlock, ReviewPause, RunContext, Stage
from simulation.trainers import StageTrainers

SIZE = 12  # samples in the generated block: ids 0-11, labels id % 2, image value = id


class TwoClasses(RealDataSource):
    facts = DatasetFacts(name="two", class_names=("even", "odd"), image_shape=(1, 4, 4), classifier_view=ImageView(4),
                         group_names=("g0", "g1"), subgroups="given")

    def load(self):
        def split(n):
            return ImageSplit(torch.zeros(n, 1, 4, 4, dtype=torch.uint8), torch.arange(n) % 2, torch.arange(n) // 4 % 2)

        return {"train": split(8), "val": split(4), "test": split(4)}


class Brightness(Scorer):
    name = "brightness"

    def score(self, images, labels, context):
        return images.float().mean(dim=(1, 2, 3))


def context(tmp_path, filters, **quality) -> RunContext:
    run_dir = RunDirectory(tmp_path / "run")
    run_dir.create("config", "new", "launch")
    data = GenerationalDataModule(TwoClasses(), regime=DataRegime(window=2, synthetic_share=0.5))
    data.open_stack(run_dir.stack_dir)
    loop = LoopConfig(run_dir=str(run_dir.path), generations=1, samples_per_generation=SIZE)
    return RunContext(run_dir=run_dir, data=data, trainers=StageTrainers({}, None, run_dir.tensorboard_dir), loop=loop,
                      quality=QualityConfig(sheet_per_class=3, **quality), classifiers=[ClassifierConfig("tiny_cnn")],
                      filters=filters, generator=None, seed=0)


def write_generated_block(run_dir: RunDirectory, scores: dict[str, torch.Tensor]) -> None:
    """What the generation stage leaves behind: its chunks and the gathered per-sample results."""
    ids = torch.arange(SIZE)
    images = ids.view(-1, 1, 1, 1).expand(SIZE, 1, 4, 4).to(torch.uint8).contiguous()
    for part in (ids[:5], ids[5:]):
        write_chunk(run_dir.shard_dir(1), GeneratedBatch(part, part % 2, images[part]))
    labels = ids % 2
    per_sample = {"label": labels, "predicted": torch.where(ids < 6, labels, 1 - labels), "group": ids // 3 % 2,
                  **{SCORE_PREFIX + name: value for name, value in scores.items()}}
    save_file(per_sample, str(run_dir.block_scores_path(1)))


def test_the_push_stage_selects_once_from_the_gathered_scores_and_pushes_the_kept_samples(tmp_path):
    reviews = tmp_path / "reviews"
    reviews.mkdir()
    (reviews / "gen_1.txt").write_text("11\n")
    ctx = context(tmp_path, [Brightness(ratio=0.5), ManualRejectFilter(reject_dir=str(reviews))])
    write_generated_block(ctx.run_dir, {"brightness": torch.arange(SIZE, dtype=torch.float64)})
    PushBlock(1).run(ctx)

    # the brighter half of each class (ids 6-11), then the reviewer's reject of id 11
    assert ctx.data.stack.generations == [1] and len(ctx.data.stack) == 5
    assert ctx.data.stack.get_batch(torch.arange(5))[0][:, 0, 0, 0].tolist() == [6, 7, 8, 9, 10]
    block = ctx.run_dir.block_report(1)
    assert (block["filter_input"], block["filter_kept"], block["filter_dropped"]) == (12, 5, 7)
    assert block["filters"]["manual"]["dropped"] == 1
    assert block["quality_q_kept"] == 0.0  # ids 6-11 are the ones the reference classifier gets wrong
    assert ctx.run_dir.is_done("g1/push") and ctx.run_dir.state.stack_blocks[0]["count"] == 5
    assert ctx.run_dir.samples_sheet(1).stat().st_size > 0


def test_the_push_stage_pauses_for_a_review_until_the_list_exists(tmp_path):
    reviews = tmp_path / "reviews"
    reviews.mkdir()
    ctx = context(tmp_path, [ManualRejectFilter(reject_dir=str(reviews))], pause_for_review=True)
    write_generated_block(ctx.run_dir, {})
    with pytest.raises(ReviewPause):
        PushBlock(1).run(ctx)
    assert not ctx.run_dir.is_done("g1/push") and ctx.data.stack.generations == []
    (reviews / "gen_1.txt").write_text("")  # the reviewer rejects nothing
    PushBlock(1).run(ctx)
    assert len(ctx.data.stack) == SIZE


class Counting(Stage):
    generation = 0
    key = StageKey.generate(0)  # any stage key: the skipping is the base class's

    def __init__(self) -> None:
        self.executed = 0

    def execute(self, context: RunContext) -> None:
        self.executed += 1
        context.finish(self.key)


def test_a_stage_recorded_as_done_is_skipped(tmp_path):
    ctx = context(tmp_path, [])
    stage = Counting()
    stage.run(ctx)
    stage.run(ctx)
    assert stage.executed == 1 and ctx.run_dir.is_done(StageKey.generate(0))


def test_one_generation_is_generator_generate_push_then_train_and_evaluate_each_classifier(tmp_path):
    ctx = context(tmp_path, [])
    loop = SimulationLoop(loop=ctx.loop, classifiers=[ClassifierConfig("lenet"), ClassifierConfig("tiny_cnn")],
                          generator=None, datamodule=ctx.data, trainer_kwargs={})
    assert [str(s.key) for s in loop.stages(0)] == ["g0/classifier/lenet", "g0/evaluate/lenet",
                                                    "g0/classifier/tiny_cnn", "g0/evaluate/tiny_cnn"]
    assert [str(s.key) for s in loop.stages(2)][:5] == ["g2/generator", "g2/generate", "g2/push",
                                                        "g2/classifier/lenet", "g2/evaluate/lenet"]


def test_generator_continue_starts_from_the_previous_generations_weights(tmp_path):
    from dataclasses import replace

    from lightning_modules.dcgan import ConditionalDCGAN
    from simulation.stages.generator import starting_generator

    ctx = context(tmp_path, [])
    ctx.generator = ConditionalDCGAN(num_classes=2, image_shape=(1, 16, 16), latent_dim=4, base_channels=4)
    previous = ctx.generator.fresh()
    folder = ctx.run_dir.generator_dir(1) / "checkpoints"
    folder.mkdir(parents=True)
    torch.save({"state_dict": previous.state_dict()}, folder / "last.ckpt")

    def same_weights(model) -> bool:
        return all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), previous.state_dict().values()))

    ctx.loop = replace(ctx.loop, generator_start="continue")
    assert same_weights(starting_generator(ctx, 2))  # generation 2 continues from generation 1
    assert not same_weights(starting_generator(ctx, 1))  # generation 1 has no predecessor: new weights
    ctx.loop = replace(ctx.loop, generator_start="fresh")
    assert not same_weights(starting_generator(ctx, 2))  # the default reading: a fresh generator every generation
    ctx.loop = replace(ctx.loop, generator_start="continue")
    with pytest.raises(Exception, match="generation 2's generator"):
        starting_generator(ctx, 3)  # gen_02 has no checkpoint
