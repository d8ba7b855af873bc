"""Test-set evaluation with SubgroupFairness / the same evaluation with plain accuracy only (target <= 1.05).

Both sides run ``trainer.test`` of the same ``ClassifierModule`` with the same LeNet weights on the same test split
(10,000 Colorized-MNIST-sized uint8 images with 3 subgroups, MNIST's test size) through the datamodule's test
loader (eval batch 500, as in the quickstart), with the same Trainer settings. The fairness side has the loop's
``SubgroupFairnessEvaluation`` callback (``SubgroupFairness`` update per batch, compute + log of every metric at the
end); the plain side a callback with one ``MulticlassAccuracy``. Also reported (not a target): a hand-written
``torch.no_grad`` accuracy loop without Lightning.

    python benchmarks/bench_evaluation.py [--quick] [--json PATH]
"""

from __future__ import annotations

import time

import lightning as L
import torch
from bench_loader import IMAGE_SHAPE, NUM_CLASSES, NUM_GROUPS, InMemorySource
from harness import alternate, apply_threads, base_parser, machine_facts, median, paired_ratio, ratio_entry, report
from torchmetrics.classification import MulticlassAccuracy

from callbacks.subgroup_fairness import SubgroupFairnessEvaluation
from datamodules.generational import GenerationalDataModule, TrainingSpec
from lightning_modules.classifier import ClassifierModule


class AccuracyOnly(L.Callback):
    """The baseline evaluation callback: plain accuracy, no fairness metrics."""

    def __init__(self, num_classes: int) -> None:
        self.metric = MulticlassAccuracy(num_classes, average="micro")
        self.results: dict[str, torch.Tensor] = {}

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self.metric.reset()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.metric.update(outputs, batch["label"])

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self.results = {"acc": self.metric.compute().detach().cpu()}
        pl_module.log("test/acc", self.results["acc"], rank_zero_only=True)


def run_test(model: ClassifierModule, dm: GenerationalDataModule, evaluation: L.Callback) -> float:
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[evaluation])
    start = time.perf_counter()
    trainer.test(model, datamodule=dm.for_training(TrainingSpec(batch_size=64, epoch_seed=0)), verbose=False)
    return time.perf_counter() - start


def hand_accuracy(model: ClassifierModule, dm: GenerationalDataModule) -> float:
    start = time.perf_counter()
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in dm.eval_loader("test"):
            correct += int((model(batch["image"]).argmax(1) == batch["label"]).sum())
            total += len(batch["label"])
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--eval-batch-size", type=int, default=500)
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    if args.quick:
        args.n_test, args.eval_batch_size = 256, 64
    repeats = args.repeats or (1 if args.quick else 5)
    warmup = 0 if args.quick else 1
    dm = GenerationalDataModule(InMemorySource(64, args.n_test), eval_batch_size=args.eval_batch_size)
    dm.prepare()
    hparams = dict(arch="lenet", num_classes=NUM_CLASSES, num_groups=NUM_GROUPS, image_shape=IMAGE_SHAPE)
    torch.manual_seed(0)
    model = ClassifierModule(**hparams)
    fairness, accuracy = SubgroupFairnessEvaluation(NUM_CLASSES, NUM_GROUPS), AccuracyOnly(NUM_CLASSES)
    samples = alternate({"fairness": lambda: run_test(model, dm, fairness),
                         "accuracy": lambda: run_test(model, dm, accuracy),
                         "hand": lambda: hand_accuracy(model, dm)}, repeats=repeats, warmup=warmup)
    acc_fair, acc_plain = float(fairness.results["acc"]), float(accuracy.results["acc"])
    if abs(acc_fair - acc_plain) > 1e-6:
        raise RuntimeError(f"the two evaluations disagree on accuracy: {acc_fair} vs {acc_plain}")
    fair_s, plain_s, hand_s = (median(samples[k]) for k in ("fairness", "accuracy", "hand"))
    print(f"{args.n_test} test images, batch {args.eval_batch_size}: trainer.test with SubgroupFairness "
          f"{fair_s:.3f}s, with plain accuracy {plain_s:.3f}s, hand-written accuracy loop {hand_s:.3f}s "
          f"(acc {acc_fair:.4f} on both)", flush=True)
    out = {"quick": args.quick, "repeats": repeats, "machine": machine_facts(), "n_test": args.n_test,
           "eval_batch_size": args.eval_batch_size, "fairness_s": fair_s, "accuracy_s": plain_s, "hand_s": hand_s,
           "hand_ratio": paired_ratio(samples, "fairness", "hand"), "ratio_of_medians": fair_s / plain_s,
           "samples": samples,
           "ratios": [ratio_entry("fairness_eval_ratio", paired_ratio(samples, "fairness", "accuracy"), "<= 1.05")]}
    report("evaluation", out, args.json)
    return out


if __name__ == "__main__":
    main()
