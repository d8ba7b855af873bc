"""Classifier training throughput with the speed options on and off: ``channels_last``, ``torch.compile``, bf16.

The options are off by default until this says they pay on the hardware at hand. For every paper architecture at
Colorized MNIST's size (3x28x28, upsampled to what the network needs) it trains ``--steps`` steps of
``ClassifierModule`` under ``Trainer.fit`` on device-resident batches (as the loop does for in-memory datasets) and
reports samples/s after ``--warmup`` steps (compilation and cuDNN autotuning happen there), for each precision and
each variant: plain, channels_last, compile, channels_last+compile. Each variant's ratio is its samples/s over the
plain variant's at the same architecture and precision (> 1: faster).

    python benchmarks/bench_classifier_options.py [--device cuda] [--quick] [--json PATH]
"""

from __future__ import annotations

import time

import lightning as L
import torch
from harness import apply_threads, base_parser, machine_facts, median, ratio_entry, report

from datamodules.device_batches import DeviceResidentBatches
from datamodules.mixing import MixedBatchSampler, MixedEpochSampler
from lightning_modules.classifier import ClassifierModule

IMAGE_SHAPE = (3, 28, 28)
NUM_CLASSES, NUM_GROUPS = 10, 3
PAPER_ARCHS = ["lenet", "alexnet", "vgg19", "resnet50", "mobilenet_v3"]
VARIANTS = {"plain": {}, "channels_last": {"channels_last": True}, "compile": {"compile": True},
            "channels_last+compile": {"channels_last": True, "compile": True}}


class StepClock(L.Callback):
    """Seconds from the end of step ``warmup`` to the end of the last step (the device synchronised at both)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, None, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        if batch_idx + 1 == self.warmup:
            self.start = time.perf_counter()
        self.end = time.perf_counter()


def resident_batches(n: int, batch_size: int, device: torch.device) -> DeviceResidentBatches:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, *IMAGE_SHAPE), dtype=torch.uint8, generator=g)
    labels, groups = torch.randint(0, NUM_CLASSES, (n,), generator=g), torch.randint(0, NUM_GROUPS, (n,), generator=g)
    sampler = MixedBatchSampler(MixedEpochSampler(n, 0, 0, seed=0), batch_size)
    return DeviceResidentBatches(images, labels, groups, sampler, device)


def samples_per_s(arch: str, options: dict, precision: str, batch_size: int, steps: int, warmup: int,
                  device: torch.device) -> float:
    torch.manual_seed(0)
    model = ClassifierModule(arch, NUM_CLASSES, NUM_GROUPS, IMAGE_SHAPE, **options)
    clock = StepClock(warmup)
    trainer = L.Trainer(accelerator=device.type, devices=1, precision=precision, max_epochs=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[clock])
    trainer.fit(model, train_dataloaders=resident_batches(steps * batch_size, batch_size, device))
    torch._dynamo.reset()
    return (steps - warmup) * batch_size / (clock.end - clock.start)


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--archs", nargs="+", default=PAPER_ARCHS)
    parser.add_argument("--precisions", nargs="+", default=["bf16-mixed", "32-true"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--batch-size", type=int, default=256, help="the paper configs' batch size")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=20, help="steps not timed (compilation, autotuning)")
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    if args.quick:
        args.archs, args.precisions, args.variants = ["tiny_cnn"], ["32-true"], ["plain", "channels_last"]
        args.batch_size, args.steps, args.warmup = 16, 4, 1
    repeats = args.repeats or 1
    device = torch.device(args.device)
    runs, ratios = [], []
    for arch in args.archs:
        for precision in args.precisions:
            rates = {name: median([samples_per_s(arch, VARIANTS[name], precision, args.batch_size, args.steps,
                                                 args.warmup, device) for _ in range(repeats)])
                     for name in args.variants}
            runs.append({"arch": arch, "precision": precision, "samples_per_s": rates})
            print(f"{arch:<14} {precision:<11} " + "  ".join(f"{k} {v:,.0f}/s" for k, v in rates.items()), flush=True)
            for name in args.variants:
                if name != "plain" and "plain" in rates:
                    ratios.append(ratio_entry(f"{arch}_{precision}_{name}_speedup", rates[name] / rates["plain"],
                                              ">= 1.0"))
    out = {"quick": args.quick, "device": str(device), "batch_size": args.batch_size, "steps": args.steps,
           "warmup": args.warmup, "machine": machine_facts(), "runs": runs, "ratios": ratios}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    report("classifier_options", out, args.json)
    return out


if __name__ == "__main__":
    main()
