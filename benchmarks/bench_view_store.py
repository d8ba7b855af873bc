"""A classifier epoch on a folder of JPEGs read from the view store vs decoded, resized and cropped at every read.

``view_store_epoch`` (target <= 0.5): seconds of one classifier training epoch (Trainer.fit, ``tiny_cnn``, every step
of the epoch, timed from the epoch's start to its end, the loader's default single process) on the training images of
a fake Hard ImageNet tree (JPEG photos of ``--height`` x ``--width``, ImageNet's typical landscape size; the
classifiers' view: resize 256 x 256, centre crop 224) read from the view store / decoded at every read. The store is
built before the timed epochs (once per data settings in the loop); its build time is printed beside. The classifier
is a light one, as a GPU makes any classifier light beside the CPU's JPEG decoding; with ResNet-50 on a CPU the model
dominates and the ratio moves towards 1.

    python benchmarks/bench_view_store.py [--quick] [--json PATH]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from harness import alternate, apply_threads, base_parser, machine_facts, median, paired_ratio, ratio_entry, report
from lightning.pytorch.callbacks import Callback

from datamodules.generational import GenerationalDataModule, TrainingSpec
from datamodules.hard_imagenet import HardImageNet
from lightning_modules.classifier import ClassifierModule


class EpochTimer(Callback):
    """Seconds from the training epoch's start to its end."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.started


def data_module(roots: tuple[str, str], store: Path | None, batch_size: int) -> GenerationalDataModule:
    source = HardImageNet(*roots, val_fraction=0.0)
    data = GenerationalDataModule(source, batch_size=batch_size, device_memory_gb=0, view_store=store is not None,
                                  view_store_dir=None if store is None else str(store))
    data.validate()
    data.prepare()  # builds the store when missing
    return data


def fit_epoch(data: GenerationalDataModule, batch_size: int) -> float:
    torch.manual_seed(0)
    source = data.source
    model = ClassifierModule(arch="tiny_cnn", num_classes=source.num_classes, num_groups=source.num_groups,
                             image_shape=source.image_shape)
    timer = EpochTimer()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, callbacks=[timer])
    trainer.fit(model, datamodule=data.for_training(TrainingSpec(batch_size=batch_size, epoch_seed=0)))
    return timer.seconds


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=None, help="training images per class (default 24)")
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    per_class = args.per_class or (2 if args.quick else 24)
    if args.quick:
        args.height, args.width = 120, 160
    repeats = args.repeats or (1 if args.quick else 3)
    from tests.fakes.hard_imagenet import write_fake_hard_imagenet

    with tempfile.TemporaryDirectory(prefix="bench_view_store_") as work:
        work = Path(work)
        roots = write_fake_hard_imagenet(work / "data", n_train_per_class=per_class, n_val_per_class=1,
                                         size=args.height, width=args.width)
        started = time.perf_counter()
        stored = data_module(roots, work / "views", args.batch_size)
        build_seconds = time.perf_counter() - started
        decoding = data_module(roots, None, args.batch_size)
        samples = alternate({"decode": lambda: fit_epoch(decoding, args.batch_size),
                             "stored": lambda: fit_epoch(stored, args.batch_size)}, repeats)
        n_train = stored.n_real
    ratio = paired_ratio(samples, "stored", "decode")
    print(f"classifier epoch over {n_train} JPEGs ({args.height} x {args.width} -> 224), batch {args.batch_size}: "
          f"decode every read {median(samples['decode']):.2f} s, view store {median(samples['stored']):.2f} s; the "
          f"store build (once, every split: train, test) {build_seconds:.2f} s")
    out = {"quick": args.quick, "machine": machine_facts(), "n_train": n_train, "batch_size": args.batch_size,
           "image": [args.height, args.width], "samples": samples, "store_build_s": round(build_seconds, 3),
           "ratios": [ratio_entry("view_store_epoch", ratio, "<= 0.5")]}
    report("view_store", out, args.json)
    return out


if __name__ == "__main__":
    main()
