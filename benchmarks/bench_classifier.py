"""ClassifierModule + Lightning Trainer epoch time / a hand-written PyTorch loop's epoch time (target <= 1.10).

Both sides: the same registry network class (built from the same seed), the same uint8 Colorized-MNIST-sized tensors
served by the same kind of DataLoader (the project's batched ``MixedTrainSet`` fetch, same shuffling seed),
normalised per batch to [-1, 1] by one fused multiply-add, the same Adam optimiser and batch size. The Trainer runs
as a classifier stage of the loop does (with ``EpochSeeder`` reseeding every step, and the CUDA probe settled as
``cli.py`` does), without logger, checkpointing, progress bar, model summary or validation. Two Lightning timings
are reported: ``fit`` (the whole ``trainer.fit`` call: setup + epoch + teardown) and ``epoch`` (first batch start to
last batch end, via a callback: the per-step cost, the primary ratio). LeNet and ResNet-18 at batch 64 and 256
(targets: <= 1.10 at 64, <= 1.05 at 256).

    python benchmarks/bench_classifier.py [--quick] [--json PATH]
"""

from __future__ import annotations

import time

import lightning as L
import torch
import torch.nn.functional as F
from harness import alternate, apply_threads, base_parser, machine_facts, median, paired_ratio, ratio_entry, report
from torch.utils.data import DataLoader

from callbacks.epoch_seeder import EpochSeeder
from common.cuda_probe import probe_cuda_once_without_gpu
from datamodules.base import ImageSplit
from datamodules.mixing import MixedTrainSet, collate_batch
from lightning_modules.classifier import ClassifierModule
from lightning_modules.networks.registry import build_network

IMAGE_SHAPE = (3, 28, 28)
NUM_CLASSES, NUM_GROUPS = 10, 3


class EpochTimer(L.Callback):
    """Time from the first batch's start to the last batch's end: the epoch without Trainer setup/teardown."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first is None:
            self.first = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.last = time.perf_counter()


def make_split(n: int, seed: int = 0) -> ImageSplit:
    g = torch.Generator().manual_seed(seed)
    return ImageSplit(torch.randint(0, 256, (n, *IMAGE_SHAPE), dtype=torch.uint8, generator=g),
                      torch.randint(0, NUM_CLASSES, (n,), generator=g), torch.randint(0, NUM_GROUPS, (n,), generator=g))


def make_loader(split: ImageSplit, batch_size: int) -> DataLoader:
    return DataLoader(MixedTrainSet(split), batch_size=batch_size, shuffle=True, collate_fn=collate_batch,
                      generator=torch.Generator().manual_seed(1))


def lightning_epoch(arch: str, split: ImageSplit, batch_size: int, lr: float, epoch_times: list[float]) -> float:
    torch.manual_seed(0)
    model = ClassifierModule(arch=arch, num_classes=NUM_CLASSES, num_groups=NUM_GROUPS, image_shape=IMAGE_SHAPE, lr=lr)
    timer = EpochTimer()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, callbacks=[timer, EpochSeeder(0)])
    loader = make_loader(split, batch_size)
    start = time.perf_counter()
    trainer.fit(model, train_dataloaders=loader)
    seconds = time.perf_counter() - start
    epoch_times.append(timer.last - timer.first)
    return seconds


def plain_epoch(arch: str, split: ImageSplit, batch_size: int, lr: float) -> float:
    torch.manual_seed(0)
    net = build_network(arch, NUM_CLASSES, 3)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    loader = make_loader(split, batch_size)
    scale, shift = torch.full((1, 3, 1, 1), 2.0 / 255.0), torch.full((1, 3, 1, 1), -1.0)
    start = time.perf_counter()
    net.train()
    for batch in loader:
        x = torch.addcmul(shift, batch["image"].float(), scale)  # [0, 255] -> [-1, 1] in one op, as ClassifierModule
        loss = F.cross_entropy(net(x), batch["label"])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return time.perf_counter() - start


def measure(arch: str, n: int, batch_size: int, repeats: int, warmup: int) -> dict:
    split = make_split(n)
    epoch_times: list[float] = []
    samples = alternate({
        "lightning": lambda: lightning_epoch(arch, split, batch_size, 1e-3, epoch_times),
        "plain": lambda: plain_epoch(arch, split, batch_size, 1e-3),
    }, repeats=repeats, warmup=warmup)
    epoch_only = epoch_times[warmup:]
    fit_s, plain_s, epoch_s = median(samples["lightning"]), median(samples["plain"]), median(epoch_only)
    return {"arch": arch, "n": n, "batch_size": batch_size, "lightning_fit_s": fit_s, "lightning_epoch_s": epoch_s,
            "plain_epoch_s": plain_s, "fit_ratio": paired_ratio(samples, "lightning", "plain"),
            "epoch_ratio": paired_ratio({"epoch": epoch_only, "plain": samples["plain"]}, "epoch", "plain"),
            "fit_ratio_of_medians": fit_s / plain_s, "epoch_ratio_of_medians": epoch_s / plain_s,
            "samples": samples, "epoch_samples": epoch_only}


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256], help="64: the quickstart's")
    parser.add_argument("--steps", type=int, default=32, help="training steps per LeNet epoch")
    parser.add_argument("--resnet-steps", type=int, default=4, help="training steps per ResNet epoch")
    parser.add_argument("--resnet-arch", default="resnet18")
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    probe_cuda_once_without_gpu()  # as cli.py does; process-wide, so both sides run with it
    if args.quick:
        args.batch_sizes, args.steps, args.resnet_steps, args.resnet_arch = [64], 4, 2, "tiny_cnn"
    repeats = args.repeats or (1 if args.quick else 5)
    warmup = 0 if args.quick else 1
    results = [measure(arch, steps * batch, batch, repeats, warmup)
               for batch in args.batch_sizes
               for arch, steps in (("lenet", args.steps), (args.resnet_arch, args.resnet_steps))]
    ratios = []
    for r in results:
        target = "<= 1.10" if r["batch_size"] < 256 else "<= 1.05"
        print(f"{r['arch']}: n={r['n']} bs={r['batch_size']} lightning fit {r['lightning_fit_s']:.3f}s "
              f"(epoch {r['lightning_epoch_s']:.3f}s) / plain {r['plain_epoch_s']:.3f}s: epoch ratio "
              f"{r['epoch_ratio']:.3f}, fit ratio {r['fit_ratio']:.3f} (Trainer setup included)", flush=True)
        ratios.append(ratio_entry(f"{r['arch']}_bs{r['batch_size']}_epoch", r["epoch_ratio"], target))

    out = {"quick": args.quick, "repeats": repeats, "machine": machine_facts(), "runs": results, "ratios": ratios}
    report("classifier", out, args.json)
    return out


if __name__ == "__main__":
    main()
