"""Stage: a generator trains on the current dataset D_{n-1} (real + stack at share p), seen at the generator's own
resolution where it has one (Stable Diffusion: real images' shorter side resized to 512 and centre-cropped, stacked
images resized to 512). It starts from new weights (seeded; ``loop.generator_start: fresh``) or from the previous
generation's final weights (``continue``: the whole model for DCGAN and DDPM, the LoRA adapter for Stable Diffusion,
whose ``state_dict`` is the adapter)."""

from __future__ import annotations

import dataclasses
import time

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from callbacks.epoch_seeder import EpochSeeder
from callbacks.latent_cache_builder import LatentCacheBuilder
from callbacks.mid_epoch_resume import MidEpochResume
from common.errors import ConfigError
from common.seeds import stage_seed
from datamodules.generational import TrainingSpec
from datamodules.latent_cache import LatentCache
from lightning_modules.generator import GeneratorModule
from records.layout import LAST_CHECKPOINT, checkpoint_dir, generation_name, last_checkpoint
from records.state import StageKey
from simulation.stages.base import RunContext, Stage


def starting_generator(context: RunContext, generation: int) -> GeneratorModule:
    """The generator a generation trains: new weights (drawn from the current RNG), and with
    ``loop.generator_start: continue`` (from generation 2 on) the previous generation's final weights loaded into it
    (``state_dict``: the whole model, or Stable Diffusion's LoRA adapter)."""
    generator = context.generator.fresh()
    if context.loop.generator_start != "continue" or generation < 2:
        return generator
    previous = context.run_dir.generator_checkpoint(generation - 1)
    if not previous.is_file():
        raise ConfigError(f"loop.generator_start=continue needs generation {generation - 1}'s generator, and "
                          f"{previous} is missing: restore it, or run with generator_start: fresh")
    generator.load_state_dict(torch.load(previous, map_location="cpu", weights_only=True)["state_dict"])
    context.progress(generation, f"the generator continues from generation {generation - 1}'s weights ({previous})")
    return generator


class TrainGenerator(Stage):
    def __init__(self, generation: int) -> None:
        self.generation = generation

    @property
    def key(self) -> StageKey:
        return StageKey.generator(self.generation)

    def execute(self, context: RunContext) -> None:
        n, data, run_dir = self.generation, context.data, context.run_dir
        stage_dir = run_dir.generator_dir(n)
        seed = stage_seed(context.seed, n, "generator")
        L.seed_everything(seed, workers=True, verbose=False)
        generator = starting_generator(context, n)
        batch = context.training_batch(context.loop.generator_batch_size or data.batch_size,
                                       generator.hparams.get("lr"))
        context.progress(n, f"training generator {type(generator).__name__} on {context.epoch_composition()}; "
                            f"{batch.describe()}")
        spec = TrainingSpec(batch_size=batch.per_device, epoch_seed=seed, image_size=generator.training_resolution,
                            real_generation=n - 1)  # D_{n-1}
        stage_callbacks = [EpochSeeder(seed), MidEpochResume()]
        if generator.cache_latents:  # Stable Diffusion: encode each image once per run
            cache = LatentCache(run_dir.latent_cache_dir, num_workers=data.num_workers)
            spec = dataclasses.replace(spec, latents=cache)
            stage_callbacks.append(LatentCacheBuilder(cache, data, data.view(spec.image_size), spec.batch_size))
        # the last checkpoint after every epoch (or every N steps): a killed stage resumes there, exactly
        every_n_steps = context.loop.generator_checkpoint_every_n_steps
        checkpoint = ModelCheckpoint(dirpath=checkpoint_dir(stage_dir), filename=LAST_CHECKPOINT, save_top_k=1,
                                     every_n_train_steps=every_n_steps)
        trainer = context.trainers.build(
            stage_dir, name=generation_name(n), version="generator", label=context.stage_label(n, "generator"),
            max_epochs=context.loop.generator_epochs,
            callbacks=[checkpoint, *stage_callbacks], num_sanity_val_steps=0, limit_val_batches=0,
            find_unused_parameters=generator.trainer_needs.find_unused_parameters,
            shown_metrics=generator.trainer_needs.shown_metrics,
        )
        trainer.logger.log_hyperparams(batch.record())
        started = time.time()
        resume = run_dir.resume_checkpoint(stage_dir)
        if resume is not None:
            context.progress(n, f"resuming the generator's training from {resume}")
        trainer.fit(generator, datamodule=data.for_training(spec), ckpt_path=resume, weights_only=True)
        trainer.save_checkpoint(last_checkpoint(stage_dir), weights_only=False)  # the final state
        context.trainers.drop_requeue_checkpoints(stage_dir)
        context.finish(self.key, stage_info=run_dir.with_stage_info(
            self.key, epochs=int(trainer.current_epoch), steps=int(trainer.global_step),
            wall_s=round(time.time() - started, 3), **batch.record()))
