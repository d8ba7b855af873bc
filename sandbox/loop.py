"""The sandbox's loop: the image loop's generation step on points, one seed at a time in plain numpy (no Trainer:
a Lightning stage costs hundreds of milliseconds, a whole sandbox generation here a few).

What it shares with the image loop: the stage order (generation 0 trains the classifier on real data; generation
t >= 1 fits a fresh generator on D_{t-1}, samples a block of S with labels in the real training proportions, pushes
it into the stack and trains the classifier on D_t), the data regimes (``datamodules.stack_policy.StackPolicy``: how
many generations the stack keeps and how many synthetic samples a training set draws), the mixing rule
(``synthetic_per_epoch``: every real sample plus min(round(p / (1 - p) N_real), stack size) synthetic ones drawn
uniformly without replacement), the seeds (``common.seeds.stage_seed``), the block statistics u_t, q_t and the
majority gain (``metrics.block_statistics``), the fairness metrics (``metrics.fairness``), the result row
(``records.results.ResultRow``) and the run directory (``RunDirectory``), so ``cli.py report`` reads its runs.

What it does not share: no images, filters, FID, checkpoints or resume inside a run (a seed takes milliseconds and is
written once, atomically); a training set is drawn once per stage rather than per epoch; and p = 1 is allowed (no real
data once the stack holds a block: the model-collapse literature's pure ``replace``), which the image loop refuses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from common.seeds import stage_seed
from datamodules.mixing import realised_share, synthetic_reuse
from datamodules.stack_policy import StackPolicy
from metrics.block_statistics import imbalance_u, majority_gain, quality_q, subgroup_counts
from metrics.fairness import subgroup_metrics
from records.results import ResultRow
from sandbox.classifier import fit_logistic, predict
from sandbox.generators import RefittedMixture, SandboxGenerator, build_generator
from sandbox.world import GaussianMixtureWorld, PointSplit

CLASSIFIER = "logistic"
#: what a sandbox row and block add to the image loop's: the fitted generator's class variance over the true one
#: (mean over classes, and per class), the minority's share of each class's block (mean over classes, per class);
#: a block also records ln det of the fitted class covariance minus the true one's (``fitted_log_variance[_class]``)
SANDBOX_FIELDS = ("fitted_variance_ratio", "fitted_variance_class", "minority_share", "minority_share_class")


@dataclass(frozen=True)
class Regime:
    """One experiment of the sandbox: which generator, which data regime and share p, how big a block.

    ``from_config`` reads a regime of a sandbox config (or of a run's config.yaml), ``to_config`` writes one."""

    name: str
    generator: SandboxGenerator = RefittedMixture()
    stack_policy: StackPolicy = StackPolicy.named("replace")
    synthetic_share: float = 1.0
    stack_generations: int = 3
    samples_per_generation: int | None = None  # None: the real training set's size (block_size below)

    @classmethod
    def from_config(cls, entry: dict) -> Regime:
        """``{name, generator: gaussian | {name: mixture, components: 2}, stack_policy: fifo, ...}`` -> a Regime."""
        values = dict(entry)
        if "components" in values:  # run directories of before the generator registry: the mixture's argument
            values["generator"] = {"name": values.get("generator", "mixture"), "components": values.pop("components")}
        if "generator" in values:
            values["generator"] = build_generator(values["generator"])
        if "stack_policy" in values:
            values["stack_policy"] = StackPolicy.named(values["stack_policy"])
        return cls(**values)

    def to_config(self) -> dict:
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                "generator": self.generator.to_config(), "stack_policy": self.stack_policy.name}

    def block_size(self, world: GaussianMixtureWorld) -> int:
        return int(self.samples_per_generation or world.num_classes * world.n_train_per_class)


@dataclass
class Block:
    generation: int
    points: np.ndarray
    labels: np.ndarray


class Stack:
    """The sandbox's stack: whole blocks, evicted oldest first as the policy says (the image loop's FIFO rule)."""

    def __init__(self, policy: StackPolicy, window: int) -> None:
        self.policy, self.keep = policy, policy.kept_generations(window)
        self.blocks: list[Block] = []

    def push(self, block: Block) -> None:
        self.blocks.append(block)
        if self.keep is not None:
            self.blocks = self.blocks[-self.keep:]

    def __len__(self) -> int:
        return sum(len(b.labels) for b in self.blocks)

    @property
    def generations(self) -> list[int]:
        return [b.generation for b in self.blocks]

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.blocks:
            return np.zeros((0, 0)), np.zeros(0, dtype=np.int64)
        return np.concatenate([b.points for b in self.blocks]), np.concatenate([b.labels for b in self.blocks])


def mix(real: PointSplit, stack: Stack, share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int,
                                                                                         int]:
    """(points, labels, n_real, n_synthetic) of a training set: the image loop's rule for p < 1; for p = 1 (sandbox
    only) the whole stack and no real data once the stack holds a block."""
    points, labels = real.points.numpy(), real.labels.numpy()
    if len(stack) == 0:
        return points, labels, len(labels), 0
    stacked, stacked_labels = stack.points()
    if share >= 1.0:
        return stacked, stacked_labels, 0, len(stacked_labels)
    n_syn = stack.policy.synthetic_per_epoch(len(labels), share, len(stack), oversample=False)
    drawn = np.sort(rng.choice(len(stack), size=n_syn, replace=False)) if n_syn < len(stack) else np.arange(n_syn)
    return (np.concatenate([points, stacked[drawn]]), np.concatenate([labels, stacked_labels[drawn]]),
            len(labels), n_syn)


def block_labels(world: GaussianMixtureWorld, size: int) -> np.ndarray:
    """Labels of a block in the real training proportions, each class's quota exact (the remainder to the first
    classes): with S = the real set's size, every class gets exactly its real count."""
    counts = world.train_counts().sum(1)
    quota = np.floor(counts / counts.sum() * size).astype(int)
    quota[: size - int(quota.sum())] += 1
    return np.repeat(np.arange(world.num_classes), quota)


def _classify(world: GaussianMixtureWorld, points, labels, test: PointSplit) -> tuple[dict, np.ndarray]:
    weights = fit_logistic(points, labels, world.num_classes)
    predicted = torch.from_numpy(predict(weights, test.points.numpy()))
    return subgroup_metrics(predicted, test.labels, test.groups, world.num_classes, world.num_groups), weights


def _float(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def run_seed(world: GaussianMixtureWorld, regime: Regime, seed: int, generations: int,
             classify: bool = True) -> tuple[list[dict], dict[str, dict]]:
    """Result rows (one per generation; none with ``classify`` False) and block reports of one seed.

    Every random stream is its own ``stage_seed``, so the generator chain does not depend on ``classify``."""
    splits = world.splits(seed)
    real, test = splits["train"], splits["test"]
    real_counts = torch.from_numpy(world.train_counts())
    true = np.array([world.class_covariance(c) for c in range(world.num_classes)])
    true_trace, true_log_det = np.trace(true, axis1=1, axis2=2), np.linalg.slogdet(true)[1]
    stack = Stack(regime.stack_policy, regime.stack_generations)
    rows, blocks = [], {}
    reference = None
    for t in range(generations + 1):
        report: dict = {}
        if t >= 1:
            points, labels, _, _ = mix(real, stack, regime.synthetic_share,
                                       np.random.default_rng(stage_seed(seed, t, "sandbox/generator_data")))
            model = regime.generator.fit(points, labels, world.num_classes,
                                         np.random.default_rng(stage_seed(seed, t, "sandbox/fit")))
            wanted = block_labels(world, regime.block_size(world))
            block = model.sample(wanted, np.random.default_rng(stage_seed(seed, t, "sandbox/sample")))
            groups = world.subgroups_of(block, wanted)
            counts = subgroup_counts(torch.from_numpy(wanted), torch.from_numpy(groups), world.num_classes,
                                     world.num_groups)
            per_class_share = (counts[:, world.minority].double() / counts.sum(1).clamp(min=1)).tolist()
            fitted = model.total_covariances()
            variance = (np.trace(fitted, axis1=1, axis2=2) / true_trace).tolist()
            log_variance = (np.linalg.slogdet(fitted)[1] - true_log_det).tolist()
            report = {"imbalance_u": imbalance_u(counts, real_counts),
                      "majority_gain": majority_gain(counts, real_counts),
                      "fitted_variance_ratio": float(np.mean(variance)), "fitted_variance_class": variance,
                      "fitted_log_variance": float(np.mean(log_variance)), "fitted_log_variance_class": log_variance,
                      "minority_share": float(np.mean(per_class_share)), "minority_share_class": per_class_share}
            if reference is not None:
                report["quality_q"] = quality_q(torch.from_numpy(predict(reference, block)), torch.from_numpy(wanted))
            stack.push(Block(t, block, wanted))
            blocks[str(t)] = report
        if not classify:
            continue
        points, labels, n_real, n_syn = mix(real, stack, regime.synthetic_share,
                                            np.random.default_rng(stage_seed(seed, t, "sandbox/classifier_data")))
        metrics, weights = _classify(world, points, labels, test)
        if t == 0:
            reference = weights
        row = ResultRow(
            generation=t, classifier=CLASSIFIER, arch=CLASSIFIER, seed=seed, dataset=world.name,
            target_share=regime.synthetic_share, realised_synthetic_share=realised_share(n_real, n_syn),
            synthetic_reuse=synthetic_reuse(n_syn, len(stack)), n_real=n_real, n_synthetic=n_syn,
            stack_size=len(stack), stack_generations=stack.generations, acc=_float(metrics["acc"]),
            meo=_float(metrics["meo"]), di=_float(metrics["di"]), md=_float(metrics["md"]),
            meo_class=_float(metrics["meo_class"]), di_class=_float(metrics["di_class"]),
            md_class=_float(metrics["md_class"]), acc_rank=[_float(v) for v in metrics["acc_rank"]],
            group_acc=[[_float(v) for v in r] for r in metrics["group_acc"]],
            quality_q=report.get("quality_q"), imbalance_u=report.get("imbalance_u"),
            majority_gain=report.get("majority_gain"), epochs=1,
        ).to_json()
        row.update({k: report.get(k) for k in SANDBOX_FIELDS})
        rows.append(row)
    return rows, blocks
