"""The data module shared by generators and classifiers: real splits + the synthetic stack, mixed at share p."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from common.errors import ConfigError
from datamodules.base import RealDataSource
from datamodules.mixing import (
    MixedBatchSampler,
    MixedEpochSampler,
    MixedTrainSet,
    collate_batch,
    realised_share,
    synthetic_per_epoch,
    synthetic_reuse,
)
from datamodules.samplers import UnpaddedDistributedSampler, distributed_rank_and_size


class _BatchedView(Dataset):
    """Expose a dataset through ``__getitems__`` so the loader gathers a batch with one tensor index."""

    def __init__(self, dataset: Dataset) -> None:
        self.mixed = MixedTrainSet(dataset)

    def __len__(self) -> int:
        return len(self.mixed)

    def __getitems__(self, indices: list[int]):
        return self.mixed.__getitems__(indices)


class GenerationalDataModule(L.LightningDataModule):
    """Owns the real dataset and (once the loop attaches it) the FIFO stack of synthetic blocks.

    Args:
        source: the real dataset (Colorized MNIST, CIFAR-20/100, Hard ImageNet).
        synthetic_share: p in [0, 1): the target synthetic share of every training epoch. An epoch uses
            min(round(p / (1 - p) * N_real), stack size) stack samples, each once, so the share is reached once the
            stack is large enough and until then the whole stack is used.
        oversample: always use round(p / (1 - p) * N_real) synthetic samples per epoch, drawing with replacement
            while the stack is smaller (a fixed share from generation 1, at the cost of repeated images).
        stack_capacity: an optional sample budget of the FIFO stack on top of ``loop.stack_generations``: the
            oldest whole generations are evicted while the stack would hold more samples (None: no budget).
        batch_size: training batch size.
        eval_batch_size: batch size for validation, test and generation.
        num_workers: DataLoader workers (0 is fastest for in-memory data; use workers for Hard ImageNet decoding).
        pin_memory: pin host memory when training on a GPU.
        stratify_predict: draw generated labels exactly in the real label proportions (else i.i.d. from them).
    """

    def __init__(
        self,
        source: RealDataSource,
        synthetic_share: float = 0.5,
        oversample: bool = False,
        stack_capacity: int | None = None,
        batch_size: int = 128,
        eval_batch_size: int = 512,
        num_workers: int = 0,
        pin_memory: bool = False,
        stratify_predict: bool = True,
    ) -> None:
        super().__init__()
        self.source = source
        self.synthetic_share = float(synthetic_share)
        self.oversample = bool(oversample)
        self.stack_capacity = stack_capacity
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.stratify_predict = stratify_predict
        self.stack = None
        self.epoch_seed = 0
        self.splits: dict[str, Dataset] | None = None
        self._predict_labels: torch.Tensor | None = None

    # ----------------------------------------------------------------------------------------------- checks
    def validate(self) -> None:
        """ConfigError for user mistakes, before any work."""
        if not 0.0 <= self.synthetic_share < 1.0:
            raise ConfigError(f"data.synthetic_share (p) must be in [0, 1), got {self.synthetic_share}: p is the "
                              "synthetic share of every epoch, e.g. 0.5 for half real, half generated")
        if self.batch_size <= 0 or self.eval_batch_size <= 0:
            raise ConfigError("data.batch_size and data.eval_batch_size must be positive")
        if self.num_workers < 0:
            raise ConfigError("data.num_workers must be >= 0")
        self.source.validate()

    # ----------------------------------------------------------------------------------------------- data
    def prepare(self) -> dict[str, Dataset]:
        """Load the real splits once per process (the loop calls this; Trainers reuse the result)."""
        if self.splits is None:
            self.splits = self.source.load()
        return self.splits

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    def attach_stack(self, stack) -> None:
        self.stack = stack

    @property
    def n_real(self) -> int:
        return len(self.prepare()["train"])

    @property
    def stack_size(self) -> int:
        return len(self.stack) if self.stack is not None else 0

    @property
    def n_synthetic(self) -> int:
        return synthetic_per_epoch(self.n_real, self.synthetic_share, self.stack_size, self.oversample)

    @property
    def realised_share(self) -> float:
        """The synthetic share of an epoch as it is (below p while the stack is smaller than the target)."""
        return realised_share(self.n_real, self.n_synthetic)

    @property
    def synthetic_reuse(self) -> float:
        """Draws per stack sample per epoch (<= 1 unless ``oversample``)."""
        return synthetic_reuse(self.n_synthetic, self.stack_size)

    def real_train_labels(self) -> torch.Tensor:
        train = self.prepare()["train"]
        if hasattr(train, "labels"):
            return torch.as_tensor(train.labels)
        return torch.as_tensor([int(train[i][1]) for i in range(len(train))])

    def _loader(self, dataset: Dataset, batch_size: int, sampler=None, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            dataset, batch_size=batch_size, sampler=sampler, shuffle=shuffle, collate_fn=collate_batch,
            num_workers=self.num_workers, pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        mixed = MixedTrainSet(self.prepare()["train"], self.stack if self.stack_size else None)
        epoch_sampler = MixedEpochSampler(mixed.n_real, mixed.n_stack, self.n_synthetic, seed=self.epoch_seed,
                                          epoch_source=self._current_epoch)
        rank, world_size = distributed_rank_and_size()
        batches = MixedBatchSampler(epoch_sampler, self.batch_size, rank=rank, world_size=world_size)
        return DataLoader(mixed, batch_sampler=batches, collate_fn=collate_batch, num_workers=self.num_workers,
                          pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0)

    def _current_epoch(self) -> int | None:
        return self.trainer.current_epoch if self.trainer is not None else None

    def _eval_loader(self, split: str) -> DataLoader:
        dataset = self.prepare()[split]
        if not hasattr(dataset, "images"):  # decoded lazily (Hard ImageNet): keep masks, decode in workers
            return DataLoader(dataset, batch_size=self.eval_batch_size, sampler=UnpaddedDistributedSampler(dataset),
                              num_workers=self.num_workers, pin_memory=self.pin_memory,
                              persistent_workers=self.num_workers > 0)
        dataset = _BatchedView(dataset)
        return self._loader(dataset, self.eval_batch_size, sampler=UnpaddedDistributedSampler(dataset))

    def split_images(self, split: str, max_samples: int, seed: int = 0) -> torch.Tensor:
        """uint8 images of (a seeded subset of at most ``max_samples`` of) a split, e.g. real statistics for FID."""
        dataset = self.prepare()[split]
        n = len(dataset)
        chosen = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_samples].sort().values
        if hasattr(dataset, "images"):
            return dataset.images[chosen]
        return torch.stack([dataset[int(i)][0] for i in chosen])

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    # ----------------------------------------------------------------------------------------------- generation
    def set_predict_request(self, num_samples: int, seed: int) -> torch.Tensor:
        """Labels of the block to generate, drawn like the real training label distribution."""
        real = self.real_train_labels()
        counts = torch.bincount(real, minlength=self.source.num_classes).double()
        g = torch.Generator().manual_seed(seed)
        if self.stratify_predict:
            quota = torch.floor(counts / counts.sum() * num_samples).long()
            remainder = num_samples - int(quota.sum())
            if remainder:
                extra = torch.multinomial(counts, remainder, replacement=True, generator=g)
                quota += torch.bincount(extra, minlength=len(counts))
            labels = torch.repeat_interleave(torch.arange(len(counts)), quota)
            labels = labels[torch.randperm(len(labels), generator=g)]
        else:
            labels = torch.multinomial(counts, num_samples, replacement=True, generator=g)
        self._predict_labels = labels
        return labels

    def predict_dataloader(self) -> DataLoader:
        if self._predict_labels is None:
            raise RuntimeError("call set_predict_request() before trainer.predict")
        labels = self._predict_labels
        dataset = TensorDataset(torch.arange(len(labels)), labels)
        return DataLoader(dataset, batch_size=self.eval_batch_size,
                          sampler=UnpaddedDistributedSampler(dataset), num_workers=0)
