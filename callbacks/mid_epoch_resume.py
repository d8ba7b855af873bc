"""Resume a training stage exactly from a checkpoint saved in the middle of an epoch.

Lightning restores its batch counter from such a checkpoint but restarts the epoch's data from the first batch
(a plain DataLoader cannot say where it was). The epoch's order is a pure function of (seed, epoch) here, so the
batches already trained on can simply be left out: the resumed stage sees the batches an uninterrupted one would
have, and ``EpochSeeder`` seeds them as it would have.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback


class MidEpochResume(Callback):
    """For the loop's training stages, whose loaders (a DataLoader or ``DeviceResidentBatches``) always batch with a
    ``MixedBatchSampler``, which can skip the batches an interrupted epoch already trained on."""

    def on_train_start(self, trainer, pl_module) -> None:
        # batches of the interrupted epoch whose step finished (Lightning numbers the next one after them)
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        if 0 < done < trainer.num_training_batches:
            trainer.train_dataloader.batch_sampler.skip_batches(done)
