"""The data module shared by generators and classifiers: the real splits and the FIFO stack, mixed at share p.

It owns the stack (opens it from the run directory, sizes it, pushes blocks, reopens it on every rank after a
push) and hands each stage a small view (``for_training``, ``for_generation``) whose loader settings (batch size,
epoch seed, image view) are fixed when the stage starts, so nothing outside ever mutates it mid-run.

Image views: the classifiers see the real images as the source prepares them (``source.classifier_view``); a
generator that trains at its own resolution (Stable Diffusion at 512) sees the same files with the shorter side
resized to that resolution and centre-cropped. Stacked generated images are stored at the generator's output
resolution and brought to the consumer's view batch by batch. For the in-memory datasets every view is the
identity and batches stay one tensor gather.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from common.distributed import rank_and_world_size
from common.errors import ConfigError
from common.generated import GeneratedBatch
from common.image_views import ImageView
from common.samples import Batch
from datamodules.base import CellSplit, LabelledSplit, RealDataSource
from datamodules.device_batches import DeviceResidentBatches, resident_bytes
from datamodules.fresh_real import SubsetSplit, fresh_indices, fresh_pool_problem
from datamodules.imagenet_folders import ImageFolderSplit
from datamodules.latent_cache import LatentCache
from datamodules.mixing import (
    MixedBatchSampler,
    MixedEpochSampler,
    MixedTrainSet,
    collate_batch,
    realised_share,
    synthetic_reuse,
)
from datamodules.regime import PAPER_REGIME, DataRegime
from datamodules.samplers import AlignedBatchSampler, unpadded_sampler
from datamodules.stack import SyntheticStack
from datamodules.view_store import ViewStore


class _BatchedView(Dataset):
    """Expose a split through ``__getitems__`` so the loader gathers a batch with one tensor index."""

    def __init__(self, dataset: LabelledSplit) -> None:
        self.mixed = MixedTrainSet(dataset)

    def __len__(self) -> int:
        return len(self.mixed)

    def __getitems__(self, indices: list[int]) -> Batch:
        return self.mixed.__getitems__(indices)


class _BlockToGenerate(Dataset):
    """``(indices, labels, seeds)`` of the samples to generate, a batch gathered with one tensor index (a block of
    10^5 samples costs no per-sample Python)."""

    def __init__(self, labels: torch.Tensor, seed: int) -> None:
        self.labels, self.seed = labels, int(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return torch.tensor(index), self.labels[index], torch.tensor(self.seed)

    def __getitems__(self, indices: list[int]):
        idx = torch.as_tensor(indices, dtype=torch.long)
        return idx, self.labels[idx], torch.full((len(idx),), self.seed, dtype=torch.long)


@dataclass(frozen=True)
class TrainingSpec:
    """Loader settings of one training stage.

    ``cells`` trains on the real data only with (class, subgroup) cell labels (the learned subgroup oracle).
    ``image_size``: the square side a generator trains at (real images: shorter side resized to it, centre crop;
    stacked images resized to it); None: the classifiers' view.
    ``latents``: the generator trains on the latent moments of those images, read from this cache (built when its
    fit starts, ``callbacks.latent_cache_builder``), with the same indices and batches as the images would have.
    ``real_generation``: the generation t whose dataset D_t the stage trains on (the ``fresh`` regime's real data
    differs by generation); None: the whole real training split.
    """

    batch_size: int
    epoch_seed: int
    cells: bool = False
    image_size: int | None = None
    latents: LatentCache | None = None
    real_generation: int | None = None


class GenerationalDataModule(L.LightningDataModule):
    """Owns the real dataset and the FIFO stack of synthetic blocks.

    Args:
        source: the real dataset (Colorized MNIST, CIFAR-20/100, Hard ImageNet, BREEDS Living-17).
        regime: the data regime: how past synthetic data is kept (policy, window, capacity) and mixed (the target
            share p, oversampling), e.g. ``{policy: fifo, window: 3, synthetic_share: 0.5}`` (datamodules/regime.py).
        batch_size: training batch size (per device, unless ``batch_size_is_global``).
        batch_size_is_global: every training batch size (this one, ``classifiers[].batch_size``,
            ``loop.generator_batch_size``, ``quality.oracle.batch_size``) is the global batch of one optimizer step,
            split evenly over the devices (per-device batch = batch size / number of devices; refused before any work
            when it does not divide), so a run on 8 GPUs trains with the same batch as on 1. False: per device (the
            global batch grows with the number of devices).
        eval_batch_size: per-device batch size for validation, test and generation (does not change results).
        num_workers: DataLoader workers (0 is fastest for in-memory data; use workers to decode ImageNet files).
        device_memory_gb: budget of device memory for device-resident training data: when the real training split
            and the stack are in memory and fit it (uint8), a training epoch gathers its batches on the device from
            device tensors (no per-batch copy, no DataLoader); 0 always uses the DataLoader.
        pin_memory: pin host memory when training on a GPU.
        stratify_predict: draw generated labels exactly in the real label proportions (else i.i.d. from them).
        view_store: decode every real image read from files (Hard ImageNet, Living-17) once into a uint8 memory-mapped
            store of the classifiers' view, instead of at every epoch (``datamodules.view_store``); false decodes on
            every read.
        view_store_dir: the store's folder, shared by the runs with the same data settings (default: ``.genbias_views``
            beside the run directory).
    """

    def __init__(
        self,
        source: RealDataSource,
        regime: DataRegime = PAPER_REGIME,
        batch_size: int = 128,
        batch_size_is_global: bool = False,
        eval_batch_size: int = 512,
        num_workers: int = 0,
        device_memory_gb: float = 2.0,
        pin_memory: bool = False,
        stratify_predict: bool = True,
        view_store: bool = True,
        view_store_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.regime = regime
        self.batch_size = batch_size
        self.batch_size_is_global = bool(batch_size_is_global)
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.device_memory_gb = float(device_memory_gb)
        self.pin_memory = pin_memory
        self.stratify_predict = stratify_predict
        self.view_store = bool(view_store)
        self.view_store_dir = view_store_dir
        self._loaded_splits: dict[str, LabelledSplit] | None = None
        self.stack: SyntheticStack | None = None
        self._stack_root: str | os.PathLike | None = None
        self.splits: dict[str, LabelledSplit] | None = None
        self._viewed: dict[tuple[str, ImageView], LabelledSplit] = {}

    # ----------------------------------------------------------------------------------------------- checks
    def validate(self) -> None:
        """ConfigError for user mistakes, before any work."""
        self.regime.validate()
        if self.batch_size <= 0 or self.eval_batch_size <= 0:
            raise ConfigError("data.batch_size and data.eval_batch_size must be positive")
        if self.num_workers < 0:
            raise ConfigError("data.num_workers must be >= 0")
        if not self.device_memory_gb >= 0:
            raise ConfigError(f"data.device_memory_gb must be >= 0 (0 disables device-resident data), got "
                              f"{self.device_memory_gb}")
        self.source.validate()

    def fresh_pool_problem(self, generations: int) -> str | None:
        """Why the ``fresh`` regime's pool cannot serve generations 0..``generations`` (None: it can, or not fresh)."""
        if not self.regime.stack_policy.draws_fresh_real:
            return None
        train = self.splits["train"] if self.splits is not None else self.source.load()["train"]  # no view store
        return fresh_pool_problem(train.labels, int(self.regime.fresh_real_per_generation), generations)

    # ----------------------------------------------------------------------------------------------- real data
    def prepare(self) -> dict[str, LabelledSplit]:
        """Load the real splits once per process (Trainers reuse the result); splits decoded from files are read
        from the view store (built on first use) when ``view_store`` is on and its folder is known."""
        if self.splits is None:
            splits = self._source_splits()
            if self.view_store and self.view_store_dir is not None:
                store = ViewStore(self.view_store_dir, num_workers=self.num_workers, batch_size=self.eval_batch_size)
                splits = {name: store.stored(split) if isinstance(split, ImageFolderSplit) and len(split) else split
                          for name, split in splits.items()}
            self.splits = splits
        return self.splits

    def _source_splits(self) -> dict[str, LabelledSplit]:
        """The source's splits, listed once per process (the disk plan asks before ``prepare``)."""
        if self._loaded_splits is None:
            self._loaded_splits = self.source.load()
        return self._loaded_splits

    def view_store_to_build(self) -> int:
        """Disk bytes the view store has yet to write for these data settings: 0 when it is off, built, or no split
        is read from image files."""
        if not self.view_store or self.view_store_dir is None:
            return 0
        store = ViewStore(self.view_store_dir)
        return sum(store.bytes_to_build(split) for split in self._source_splits().values()
                   if isinstance(split, ImageFolderSplit) and len(split))

    def default_view_store_dir(self, folder: str | os.PathLike) -> None:
        """Where the view store lives unless ``view_store_dir`` names a folder (the loop: beside the run)."""
        if self.view_store_dir is None:
            self.view_store_dir = str(folder)

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    @property
    def n_real(self) -> int:
        """Real samples of one generation's dataset: the training split, or the ``fresh`` regime's per generation."""
        if self.regime.stack_policy.draws_fresh_real:
            return int(self.regime.fresh_real_per_generation)
        return len(self.prepare()["train"])

    def planned_size(self, split: str) -> int:
        """The size of a real split without preparing the data (no view store is built): for plans and checks."""
        return len(self.splits[split]) if self.splits is not None else len(self.source.load()[split])

    @property
    def real_per_epoch(self) -> int:
        """Real samples an epoch uses now: ``n_real``, or none at p = 1 once the stack holds a block."""
        return self.regime.stack_policy.real_per_epoch(self.n_real, self.target_share, self.stack_size)

    def real_training_split(self, view: ImageView, generation: int | None) -> LabelledSplit:
        """The real training samples of D_``generation`` as ``view`` sees them: the whole split, or the ``fresh``
        regime's new samples of that generation."""
        split = self.viewed_split("train", view)
        if not self.regime.stack_policy.draws_fresh_real or generation is None:
            return split
        labels = self.prepare()["train"].labels
        return SubsetSplit(split, fresh_indices(labels, int(self.regime.fresh_real_per_generation), generation))

    def subset_ids(self, split: str, max_samples: int, seed: int = 0) -> torch.Tensor:
        """Sorted indices of a seeded subset of at most ``max_samples`` of a split (e.g. FID's real side): the same
        subset for the same seed, whatever the view."""
        size = len(self.prepare()[split])
        chosen = torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:max_samples]
        return chosen.sort().values

    # ----------------------------------------------------------------------------------------------- views
    def view(self, image_size: int | None = None) -> ImageView:
        """The classifiers' view (None), or a generator's at ``image_size``: shorter side resized, centre crop."""
        return self.source.classifier_view if image_size is None else ImageView.shorter_side(image_size)

    def viewed_split(self, split: str, view: ImageView) -> LabelledSplit:
        """A real split as ``view`` sees it (the loaded split itself for the classifiers' view); cached."""
        key = (split, view)
        if key not in self._viewed:
            self._viewed[key] = self.prepare()[split].viewed(view)
        return self._viewed[key]

    # ----------------------------------------------------------------------------------------------- the stack
    @property
    def target_share(self) -> float:
        """p, the synthetic share the regime aims every epoch at (``data.regime.synthetic_share``)."""
        return float(self.regime.synthetic_share)

    def open_stack(self, root: str | os.PathLike, verify: bool = True) -> SyntheticStack:
        """Open (or create) the stack at ``root``, keeping the generations the data regime keeps within its sample
        budget (``data.regime.capacity``) when set. ``verify`` checks every block's checksum (rank 0 at start)."""
        self._stack_root = root
        self.stack = SyntheticStack(root, self.regime.kept_generations, self.regime.capacity, verify=verify)
        return self.stack

    def push_block(self, images: torch.Tensor, labels: torch.Tensor, generation: int) -> None:
        """Add one generation's kept samples (rank 0; the other ranks ``reopen_stack`` after the barrier)."""
        self._require_stack().push(images, labels, generation)

    def push_block_batches(self, batches: Iterable[GeneratedBatch], count: int, image_shape: tuple[int, int, int],
                           generation: int) -> None:
        """Add one generation's ``count`` kept samples as they are read, a batch at a time (rank 0)."""
        self._require_stack().push_batches(((b.images, b.labels) for b in batches), count, image_shape, generation)

    def reopen_stack(self) -> SyntheticStack:
        """Re-read the manifest after a push by rank 0 (the block's checksums were computed as it was written)."""
        return self.open_stack(self._require_stack_root(), verify=False)

    def _require_stack(self) -> SyntheticStack:
        if self.stack is None:
            raise RuntimeError("open_stack() must be called before the stack is used")
        return self.stack

    def _require_stack_root(self) -> str | os.PathLike:
        if self._stack_root is None:
            raise RuntimeError("open_stack() must be called before reopen_stack()")
        return self._stack_root

    @property
    def stack_size(self) -> int:
        return len(self.stack) if self.stack is not None else 0

    @property
    def stack_generations(self) -> list[int]:
        return list(self.stack.generations) if self.stack is not None else []

    @property
    def n_synthetic(self) -> int:
        return self.regime.synthetic_per_epoch(self.n_real, self.stack_size)

    @property
    def realised_synthetic_share(self) -> float:
        """The synthetic share of an epoch as it is (below p while the stack is smaller than the target)."""
        return realised_share(self.real_per_epoch, self.n_synthetic)

    @property
    def synthetic_reuse(self) -> float:
        """Draws per stack sample per epoch (<= 1 unless ``data.regime.oversample``)."""
        return synthetic_reuse(self.n_synthetic, self.stack_size)

    # ----------------------------------------------------------------------------------------------- loaders
    def train_loader(self, spec: TrainingSpec,
                     device: torch.device | None = None) -> DataLoader | DeviceResidentBatches:
        """One epoch = every real sample once + ``n_synthetic`` stack samples, in batches split across ranks.

        With a ``device`` and data that fit ``device_memory_gb`` (in memory, seen as stored), the same batches are
        gathered on the device instead of loaded (``DeviceResidentBatches``).
        """
        if spec.cells:
            mixed = MixedTrainSet(CellSplit(self.prepare()["train"], self.source.num_groups))
            n_synthetic = 0
        elif spec.latents is not None:
            if spec.latents.training_set is None:
                raise RuntimeError("the latent cache is not built yet: LatentCacheBuilder builds it when fit starts")
            mixed, n_synthetic = spec.latents.training_set, self.n_synthetic
        else:
            view = self.view(spec.image_size)
            mixed = MixedTrainSet(self.real_training_split(view, spec.real_generation),
                                  self.stack if self.stack_size else None, stack_view=view)
            n_synthetic = self.n_synthetic
        epoch_sampler = MixedEpochSampler(mixed.n_real, mixed.n_stack, n_synthetic, seed=spec.epoch_seed,
                                          include_real=spec.cells or self.real_per_epoch > 0)
        rank, world_size = rank_and_world_size()
        batches = MixedBatchSampler(epoch_sampler, spec.batch_size, rank=rank, world_size=world_size)
        if device is not None and self._fits_device(mixed):
            every = mixed.all_samples()
            images, labels, groups = every["image"], every["label"], every["subgroup"]
            return DeviceResidentBatches(images, labels, groups, batches, torch.device(device))
        return DataLoader(mixed, batch_sampler=batches, collate_fn=collate_batch, num_workers=self.num_workers,
                          pin_memory=self.pin_memory, persistent_workers=self.num_workers > 0)

    def _fits_device(self, mixed: MixedTrainSet) -> bool:
        """In memory, seen as stored, and within the device-memory budget."""
        if self.device_memory_gb <= 0 or mixed.real.images is None or mixed.stack_view is not None:
            return False
        return resident_bytes(mixed.real.images, mixed.stack) <= self.device_memory_gb * 2**30

    def eval_loader(self, split: str, cells: bool = False) -> DataLoader:
        """Every sample of ``split`` exactly once across ranks (no padding duplicates)."""
        dataset = self.prepare()[split]
        if cells:
            dataset = CellSplit(dataset, self.source.num_groups)
        workers = dict(num_workers=self.num_workers, pin_memory=self.pin_memory,
                       persistent_workers=self.num_workers > 0)
        if dataset.images is None or getattr(dataset, "masks", False):  # decoded lazily or with masks: keep them
            return DataLoader(dataset, batch_size=self.eval_batch_size, sampler=unpadded_sampler(dataset),
                              **workers)
        view = _BatchedView(dataset)
        return DataLoader(view, batch_size=self.eval_batch_size, sampler=unpadded_sampler(view),
                          collate_fn=collate_batch, **workers)

    def generation_labels(self, num_samples: int, seed: int) -> torch.Tensor:
        """Labels of the block to generate, drawn like the real training label distribution."""
        real = self.prepare()["train"].labels
        counts = torch.bincount(real, minlength=self.source.num_classes).double()
        g = torch.Generator().manual_seed(seed)
        if self.stratify_predict:
            quota = torch.floor(counts / counts.sum() * num_samples).long()
            remainder = num_samples - int(quota.sum())
            if remainder:
                extra = torch.multinomial(counts, remainder, replacement=True, generator=g)
                quota += torch.bincount(extra, minlength=len(counts))
            labels = torch.repeat_interleave(torch.arange(len(counts)), quota)
            return labels[torch.randperm(len(labels), generator=g)]
        return torch.multinomial(counts, num_samples, replacement=True, generator=g)

    def generation_loader(self, labels: torch.Tensor, seed: int, batch_size: int | None = None,
                          skip: Collection[int] = ()) -> DataLoader:
        """``(indices, labels, seeds)`` batches of the block to generate, aligned batches split across ranks; every
        sample carries the block's seed, from which the generator draws its noise with its index; ``skip``: the
        first indices of batches not to generate (a resumed stage's finished chunks)."""
        sampler = AlignedBatchSampler(len(labels), batch_size or self.eval_batch_size, skip=skip)
        return DataLoader(_BlockToGenerate(labels, seed), batch_sampler=sampler, num_workers=0,
                          collate_fn=collate_batch)

    # ----------------------------------------------------------------------------------------------- stage views
    def for_training(self, spec: TrainingSpec) -> StageData:
        """The view a training stage hands to ``trainer.fit/test``."""
        return StageData(self, spec=spec)

    def for_generation(self, labels: torch.Tensor, seed: int, batch_size: int | None = None,
                       skip: Callable[[], Collection[int]] | None = None) -> StageData:
        """The view a generation stage hands to ``trainer.predict``: the block's labels and its sampling seed;
        ``skip()``, asked when the loader is built (after the callbacks' setup), names the batches not to generate."""
        return StageData(self, labels=labels, seed=seed, batch_size=batch_size, skip=skip)


class StageData(L.LightningDataModule):
    """A LightningDataModule for one stage: the shared data with this stage's loader settings."""

    def __init__(self, data: GenerationalDataModule, spec: TrainingSpec | None = None,
                 labels: torch.Tensor | None = None, seed: int = 0, batch_size: int | None = None,
                 skip: Callable[[], Collection[int]] | None = None) -> None:
        super().__init__()
        self.data, self.spec, self.labels, self.seed, self.batch_size = data, spec, labels, seed, batch_size
        self.skip = skip

    def setup(self, stage: str | None = None) -> None:
        self.data.prepare()

    def train_dataloader(self) -> DataLoader | DeviceResidentBatches:
        return self.data.train_loader(self._spec(), device=self.trainer.strategy.root_device if self.trainer else None)

    def val_dataloader(self) -> DataLoader:
        return self.data.eval_loader("val", cells=self._spec().cells)

    def test_dataloader(self) -> DataLoader:
        return self.data.eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        if self.labels is None:
            raise RuntimeError("this stage view has no block to generate: use GenerationalDataModule.for_generation")
        return self.data.generation_loader(self.labels, self.seed, self.batch_size,
                                           skip=self.skip() if self.skip else ())

    def _spec(self) -> TrainingSpec:
        if self.spec is None:
            raise RuntimeError("this stage view has no training settings: use GenerationalDataModule.for_training")
        return self.spec
