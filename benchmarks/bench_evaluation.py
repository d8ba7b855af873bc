"""Test-set evaluation with SubgroupFairness / the same evaluation with plain accuracy only (target <= 1.05).

Both sides run ``trainer.test`` on the same LeNet weights, the same test split (10,000 Colorized-MNIST-sized
uint8 images with 3 subgroups, MNIST's test size) through the datamodule's test loader (eval batch 500, as in
the quickstart), with the same Trainer settings. The fairness side is ``ClassifierModule`` as the loop uses it
(``SubgroupFairness`` update per batch, compute + log of every metric at the end); the plain side is the same
module with its test hooks replaced by one ``MulticlassAccuracy``. Also reported (not a target): a
hand-written ``torch.no_grad`` accuracy loop without Lightning.

    python benchmarks/bench_evaluation.py [--quick] [--json PATH]
"""

from __future__ import annotations

import time

import lightning as L
import torch
from bench_loader import IMAGE_SHAPE, NUM_CLASSES, NUM_GROUPS, InMemorySource
from harness import alternate, apply_threads, base_parser, machine_facts, median, paired_ratio, ratio_entry, report
from torchmetrics.classification import MulticlassAccuracy

from datamodules.generational import GenerationalDataModule
from lightning_modules.classifier import ClassifierModule


class AccuracyOnlyClassifier(ClassifierModule):
    """ClassifierModule whose test loop counts plain accuracy only: the baseline without fairness metrics."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.test_acc = MulticlassAccuracy(self.num_classes, average="micro")

    def test_step(self, batch, batch_idx: int) -> None:
        _, logits, labels = self._shared_step(batch)
        self.test_acc.update(logits, labels)

    def on_test_epoch_start(self) -> None:
        self.test_acc.reset()

    def on_test_epoch_end(self) -> None:
        self.test_results = {"acc": self.test_acc.compute().detach().cpu()}
        self.log("test/acc", self.test_results["acc"], rank_zero_only=True)


def run_test(model: ClassifierModule, dm: GenerationalDataModule) -> float:
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    start = time.perf_counter()
    trainer.test(model, datamodule=dm, verbose=False)
    return time.perf_counter() - start


def hand_accuracy(model: ClassifierModule, dm: GenerationalDataModule) -> float:
    start = time.perf_counter()
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels, _ in dm.test_dataloader():
            correct += int((model(images).argmax(1) == labels).sum())
            total += len(labels)
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
    fairness_model = ClassifierModule(**hparams)
    accuracy_model = AccuracyOnlyClassifier(**hparams)
    accuracy_model.load_state_dict(fairness_model.state_dict())
    samples = alternate({"fairness": lambda: run_test(fairness_model, dm),
                         "accuracy": lambda: run_test(accuracy_model, dm),
                         "hand": lambda: hand_accuracy(fairness_model, dm)}, repeats=repeats, warmup=warmup)
    acc_fair, acc_plain = float(fairness_model.test_results["acc"]), float(accuracy_model.test_results["acc"])
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
