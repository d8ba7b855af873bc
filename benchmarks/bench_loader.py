"""The mixed real + synthetic train loader vs plain in-memory indexing, and the data-wait share of a classifier stage.

1. ``loader_ratio`` (target >= 0.8): samples/s of ``GenerationalDataModule.train_dataloader()`` (real split in
   memory + a ``SyntheticStack`` of 3 generated blocks on disk, p = 0.5, the project's batched ``__getitems__``
   fetch) / samples/s of plain indexing of in-memory uint8 tensors holding the same number of samples with a
   random permutation. Same batch size, same (C, H, W); the stack files sit in the page cache (as in the loop,
   which has just written them).
2. ``data_wait_share`` (target < 5%): during a quickstart-like classifier stage (LeNet, batch 64, the same
   mixed loader, Trainer.fit for one epoch) the summed gaps between one ``on_train_batch_end`` and the next
   ``on_train_batch_start`` (the batch fetch plus Lightning's per-batch glue, so an upper bound of the data wait)
   over the epoch's time from the first batch start to the last batch end. Also printed: the loader's own
   fetch time for one epoch (from part 1) over that epoch time, which leaves Lightning's glue out.
3. ``device_resident_ratio`` (target >= 1.0): samples/s of a LeNet training epoch (Trainer.fit, the first
   ``--lightning-batches`` batches) on device-resident batches (``DeviceResidentBatches``: the real split and the
   stack held as tensors on the training device, each batch one gather there) / on the DataLoader path, same
   batches in the same order. Also printed: both paths' bare iteration rates and the one-off cost per stage of
   gathering the stack into device tensors.

    python benchmarks/bench_loader.py [--quick] [--json PATH]
"""

from __future__ import annotations

import tempfile
import time

import lightning as L
import torch
from harness import alternate, apply_threads, base_parser, machine_facts, median, paired_ratio, ratio_entry, report

from common.image_views import ImageView
from common.samples import make_batch
from datamodules.base import ImageSplit, RealDataSource
from datamodules.device_batches import DeviceResidentBatches
from datamodules.facts import DatasetFacts
from datamodules.generational import GenerationalDataModule, TrainingSpec
from datamodules.regime import DataRegime
from lightning_modules.classifier import ClassifierModule

IMAGE_SHAPE = (3, 28, 28)
NUM_CLASSES, NUM_GROUPS = 10, 3


def random_split(n: int, seed: int) -> ImageSplit:
    g = torch.Generator().manual_seed(seed)
    return ImageSplit(torch.randint(0, 256, (n, *IMAGE_SHAPE), dtype=torch.uint8, generator=g),
                      torch.randint(0, NUM_CLASSES, (n,), generator=g), torch.randint(0, NUM_GROUPS, (n,), generator=g))


class InMemorySource(RealDataSource):
    """Random Colorized-MNIST-sized splits, so the benchmark needs no dataset files."""

    facts = DatasetFacts(name="bench_in_memory", class_names=tuple(str(c) for c in range(NUM_CLASSES)),
                         image_shape=IMAGE_SHAPE, classifier_view=ImageView(IMAGE_SHAPE[-1]),
                         group_names=("red", "green", "blue"), subgroups="given")

    def __init__(self, n_train: int, n_eval: int) -> None:
        self.splits = {"train": random_split(n_train, 0), "val": random_split(n_eval, 1),
                       "test": random_split(n_eval, 2)}

    def load(self):
        return self.splits


def build_datamodule(stack_dir: str, n_real: int, block: int, batch_size: int) -> GenerationalDataModule:
    dm = GenerationalDataModule(InMemorySource(n_real, 1000), DataRegime(window=3, synthetic_share=0.5),
                                batch_size=batch_size)
    dm.prepare()
    dm.open_stack(stack_dir)
    for generation in (1, 2, 3):
        g = torch.Generator().manual_seed(100 + generation)
        dm.push_block(torch.randint(0, 256, (block, *IMAGE_SHAPE), dtype=torch.uint8, generator=g),
                      torch.randint(0, NUM_CLASSES, (block,), generator=g), generation)
    return dm


def train_loader(dm: GenerationalDataModule, device: torch.device | None = None):
    """The loader a classifier stage trains on (device-resident batches when ``device`` is given and data fit)."""
    loader = dm.train_loader(TrainingSpec(batch_size=dm.batch_size, epoch_seed=0), device=device)
    if device is not None and not isinstance(loader, DeviceResidentBatches):
        raise RuntimeError("the benchmark's data do not fit data.device_memory_gb: raise it")
    return loader


def mixed_epoch(dm: GenerationalDataModule, counted: list[int]) -> float:
    loader = train_loader(dm)
    start = time.perf_counter()
    n = 0
    for batch in loader:
        n += len(batch["label"])
    seconds = time.perf_counter() - start
    counted.append(n)
    return seconds


def timed_resident_epoch(dm: GenerationalDataModule, device: torch.device) -> float:
    """One epoch's iteration over device-resident batches (built before the clock starts)."""
    loader = train_loader(dm, device)
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def plain_epoch(images: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor, batch_size: int) -> float:
    start = time.perf_counter()
    order = torch.randperm(len(labels))
    n = 0
    for first in range(0, len(order), batch_size):
        idx = order[first:first + batch_size]
        batch = make_batch(images[idx], labels[idx], groups[idx])  # what the loader paths yield
        n += len(batch["label"])
    return time.perf_counter() - start


class DataWaitTimer(L.Callback):
    """Sums the gaps between a batch's end and the next batch's start (where the loader is asked for data)."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self.first_start: float | None = None
        self.last_end: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self.first_start is None:
            self.first_start = now
        elif self.last_end is not None:
            self.gaps.append(now - self.last_end)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.last_end = time.perf_counter()

    @property
    def share(self) -> float:
        return sum(self.gaps) / (self.last_end - self.first_start)


def lightning_epoch(dm: GenerationalDataModule, device: torch.device | None, batches: int) -> float:
    """Seconds of ``batches`` LeNet training steps on the DataLoader path (``device=None``) or the device path."""
    torch.manual_seed(0)
    model = ClassifierModule(arch="lenet", num_classes=NUM_CLASSES, num_groups=NUM_GROUPS, image_shape=IMAGE_SHAPE)
    timer = DataWaitTimer()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        limit_train_batches=batches, num_sanity_val_steps=0, callbacks=[timer])
    trainer.fit(model, train_dataloaders=train_loader(dm, device))
    return timer.last_end - timer.first_start


def data_wait_share(dm: GenerationalDataModule) -> tuple[float, float]:
    torch.manual_seed(0)
    model = ClassifierModule(arch="lenet", num_classes=NUM_CLASSES, num_groups=NUM_GROUPS, image_shape=IMAGE_SHAPE)
    timer = DataWaitTimer()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, callbacks=[timer])
    trainer.fit(model, train_dataloaders=train_loader(dm))
    return timer.share, timer.last_end - timer.first_start


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--n-real", type=int, default=20000)
    parser.add_argument("--block", type=int, default=10000, help="samples per generated block (3 blocks)")
    parser.add_argument("--batch-size", type=int, default=64, help="the quickstart's batch size")
    parser.add_argument("--lightning-batches", type=int, default=150, help="training steps per epoch in part 3")
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    if args.quick:
        args.n_real, args.block, args.lightning_batches = 512, 256, 4
    repeats = args.repeats or (1 if args.quick else 5)
    warmup = 0 if args.quick else 1
    with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
        dm = build_datamodule(tmp, args.n_real, args.block, args.batch_size)
        n_epoch = dm.n_real + dm.n_synthetic
        g = torch.Generator().manual_seed(7)
        images = torch.randint(0, 256, (n_epoch, *IMAGE_SHAPE), dtype=torch.uint8, generator=g)
        labels = torch.randint(0, NUM_CLASSES, (n_epoch,), generator=g)
        groups = torch.randint(0, NUM_GROUPS, (n_epoch,), generator=g)
        counted: list[int] = []
        samples = alternate({"mixed": lambda: mixed_epoch(dm, counted),
                             "plain": lambda: plain_epoch(images, labels, groups, args.batch_size)},
                            repeats=repeats, warmup=warmup)
        if set(counted) != {n_epoch}:
            raise RuntimeError(f"the mixed loader yielded {sorted(set(counted))} samples per epoch, expected {n_epoch}")
        mixed_rate, plain_rate = n_epoch / median(samples["mixed"]), n_epoch / median(samples["plain"])
        shares = [data_wait_share(dm) for _ in range(1 if args.quick else 3)]
        cpu = torch.device("cpu")
        started = time.perf_counter()
        train_loader(dm, cpu)
        resident_build_s = time.perf_counter() - started
        iteration = alternate({"loader": lambda: mixed_epoch(dm, []),
                               "resident": lambda: timed_resident_epoch(dm, cpu)}, repeats=repeats, warmup=warmup)
        training = alternate({"loader": lambda: lightning_epoch(dm, None, args.lightning_batches),
                              "resident": lambda: lightning_epoch(dm, cpu, args.lightning_batches)},
                             repeats=repeats, warmup=warmup)
    trained = min(args.lightning_batches, len(range(0, n_epoch, args.batch_size))) * args.batch_size
    resident = {"build_s": resident_build_s,
                "iteration_samples_per_s": {k: n_epoch / median(v) for k, v in iteration.items()},
                "training_samples_per_s": {k: trained / median(v) for k, v in training.items()},
                "iteration": iteration, "training": training}
    print(f"device-resident batches ({cpu}): LeNet training {resident['training_samples_per_s']['resident']:,.0f} "
          f"samples/s vs {resident['training_samples_per_s']['loader']:,.0f} on the DataLoader path; bare iteration "
          f"{resident['iteration_samples_per_s']['resident']:,.0f} vs "
          f"{resident['iteration_samples_per_s']['loader']:,.0f} samples/s; gathering the stack once per stage "
          f"{resident_build_s:.2f}s", flush=True)
    wait_share = median([s for s, _ in shares])
    # the loader's own share: one epoch's fetch time (measured above) over the classifier epoch's time
    fetch_share = (n_epoch / mixed_rate) / median([t for _, t in shares])
    print(f"epoch of {dm.n_real} real + {dm.n_synthetic} synthetic (stack {3 * args.block}), batch {args.batch_size}: "
          f"mixed {mixed_rate:,.0f} samples/s, plain {plain_rate:,.0f} samples/s; classifier epoch "
          f"{median([t for _, t in shares]):.2f}s, data wait {100 * wait_share:.2f}% (hook gaps; the loader's own "
          f"fetch time is {100 * fetch_share:.2f}% of it)", flush=True)
    out = {"quick": args.quick, "repeats": repeats, "machine": machine_facts(), "n_real": dm.n_real,
           "n_synthetic": dm.n_synthetic, "stack": 3 * args.block, "batch_size": args.batch_size,
           "mixed_samples_per_s": mixed_rate, "plain_samples_per_s": plain_rate, "samples": samples,
           "data_wait_shares": [s for s, _ in shares], "classifier_epoch_s": [t for _, t in shares],
           "fetch_share_estimate": fetch_share,
           "ratio_of_medians": mixed_rate / plain_rate, "device_resident": resident,
           "ratios": [ratio_entry("loader_ratio", paired_ratio(samples, "plain", "mixed"), ">= 0.8"),
                      ratio_entry("data_wait_share", wait_share, "< 5%"),
                      ratio_entry("device_resident_ratio", paired_ratio(training, "loader", "resident"), ">= 1.0")]}
    report("loader", out, args.json)
    return out


if __name__ == "__main__":
    main()
