"""Typed config sections of an experiment (the `loop:`, `classifiers:` and `quality:` keys of a YAML file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from records.results import classifier_name


@dataclass
class ClassifierConfig:
    """One downstream classifier, retrained from scratch (or from ImageNet weights) at every generation.

    Args:
        arch: registry name: lenet, alexnet, vgg19, resnet18, resnet50, mobilenet_v3 (= _large), mobilenet_v3_small,
            deit_small, or the test archs tiny_cnn, tiny_vit.
        name: name in results (default: arch); must be unique.
        lr: Adam learning rate. The paper states 1e-1, which diverges for these networks with Adam; 1e-3 trains.
        weight_decay: Adam weight decay.
        max_epochs: maximum epochs per generation (paper: 50), with early stopping on validation loss.
        patience: early-stopping patience in epochs (0 disables early stopping).
        pretrained: start from ImageNet weights (local file or torch/HF cache; never downloaded at run time).
        weights_path: local ImageNet weights file (.pth or .safetensors) for pretrained: true.
        linear_probe: with pretrained, train only the new head.
        dropout: dropout probability of the architecture's dropout layers (None: its default).
        input_size: input side the images are resized to (None: native size, upsampled to the arch's minimum;
            224 with pretrained weights).
        batch_size: training batch size for this classifier (None: data.batch_size).
        channels_last: NHWC network and inputs (speed only; measured in BENCHMARKS.md before turning it on).
        compile: run the training steps through ``torch.compile`` (speed only; the first steps compile).
    """

    arch: str
    name: str | None = None
    lr: float = 1e-3
    weight_decay: float = 0.0
    max_epochs: int = 50
    patience: int = 5
    pretrained: bool = False
    weights_path: str | None = None
    linear_probe: bool = False
    dropout: float | None = None
    input_size: int | None = None
    batch_size: int | None = None
    channels_last: bool = False
    compile: bool = False

    @property
    def label(self) -> str:
        return classifier_name(self.name, self.arch)


@dataclass
class LoggerConfig:
    """A logger beside the built-in TensorBoard: one run per run directory holding the per-generation summary (step =
    generation), each stage a run nested under it (docs/loggers.md).

    Args:
        kind: csv (``<run_dir>/csv/summary.csv``, a row per generation; ``<run_dir>/csv/gen_XX/<stage>/metrics.csv``),
            mlflow (a parent run, the stages its children) or wandb (a run, the stages in its group; quiet unless
            ``WANDB_SILENT=false``).
        tracking_uri: MLflow tracking URI (default ``sqlite:///<run_dir>/mlflow.db``: local; a server URL, or
            ``file:DIR`` with ``MLFLOW_ALLOW_FILE_STORE=true`` on MLflow >= 3.7).
        experiment: MLflow experiment / W&B project (default: genbias).
        offline: W&B offline mode (nothing leaves the machine; ``wandb sync`` uploads later). ``WANDB_MODE=offline``
            does the same.
        save_dir: where csv and wandb write (default: ``<run_dir>/csv``, ``<run_dir>``).
    """

    kind: Literal["csv", "mlflow", "wandb"]
    tracking_uri: str | None = None
    experiment: str | None = None
    offline: bool = False
    save_dir: str | None = None


@dataclass
class LoopConfig:
    """The generational loop.

    Args:
        run_dir: where everything of this run lands (default: runs/<config file stem>/seed_<seed>).
        generations: number of generations after generation 0 (paper: 10 for MNIST/CIFAR, 4-5 for Hard ImageNet).
        samples_per_generation: S, samples generated per generation before filtering.
        generator_epochs: epochs the generator trains each generation.
        generator_start: ``fresh`` (the default): each generation's generator starts from new weights (seeded), the
            base model plus a new LoRA adapter for Stable Diffusion; ``continue``: from the previous generation's
            final weights (DCGAN, DDPM) or LoRA adapter (Stable Diffusion), the other reading of "retrained"; the
            optimizer starts afresh either way. Generation 1 always starts fresh.
        generator_batch_size: generator training batch size (None: data.batch_size).
        generator_checkpoint_every_n_steps: also checkpoint the generator every N training steps (None: at the end
            of every epoch only); a stage killed or preempted resumes exactly from the last one, mid-epoch included.
        overwrite: replace an existing run of this tool in run_dir that holds another config (explicit opt-in; a
            folder that is not a run of this tool is never deleted).
        rebuild_stack: re-create the synthetic stack from the generated blocks the run directory keeps (each
            generation's shards and scores), when the stack on disk no longer matches the run state.
        keep_raw_shards: keep each generation's raw block (gen_XX/shards/) after its push; false deletes it once the
            push is recorded in state.json (saves S images per generation; --loop.rebuild_stack then cannot
            re-create the stack). Does not change what the run computes.
        loggers: loggers besides TensorBoard (CSV, MLflow, W&B), e.g. ``[{kind: csv}, {kind: mlflow}]``; not part
            of the run's identity (a resume may add or drop one).
        classifier_lr: Adam learning rate of every classifier, replacing each one's ``lr`` (null: each its own);
            ``configs/variants/paper_lr.yaml`` sets the paper's printed 1e-1.
        classifier_parallelism: ``sequential`` (the default): a generation's classifiers train one after another,
            each on every device of the trainer settings; ``devices``: side by side, one worker process per device
            (each a single-device fit with its configured batch; on CPU the threads are divided between the
            workers), with the same result rows as sequential at the same threads per classifier
            (docs/loop.md, Classifiers side by side). Not part of the run's identity.
    """

    run_dir: str | None = None
    generations: int = 10
    samples_per_generation: int = 1000
    generator_epochs: int = 10
    generator_start: Literal["fresh", "continue"] = "fresh"
    generator_batch_size: int | None = None
    generator_checkpoint_every_n_steps: int | None = None
    overwrite: bool = False
    rebuild_stack: bool = False
    keep_raw_shards: bool = True
    loggers: list[LoggerConfig] = field(default_factory=list)
    classifier_lr: float | None = None
    classifier_parallelism: Literal["sequential", "devices"] = "sequential"


@dataclass
class FIDConfig:
    """FID of each generation's generator.

    Args:
        enabled: compute FID every generation.
        extractor: "classifier" (penultimate features of the reference classifier: a domain FID, offline),
            "inception" (Inception-V3 weights from ``inception_weights`` or the torch hub cache),
            "auto" (inception when its weights file is found, else classifier).
        num_samples: samples of each side (generated, real) used.
        inception_weights: local path of torch-fidelity's weights-inception-2015-12-05-6726825d.pth.
        batch_size: feature-extraction batch size of the real side.
    """

    enabled: bool = True
    extractor: Literal["auto", "classifier", "inception"] = "classifier"
    num_samples: int = 1000
    inception_weights: str | None = None
    batch_size: int = 256


@dataclass
class OracleConfig:
    """Learned subgroup oracle (where the dataset has subgroups but no pixel-level oracle: CIFAR-20/100, Living-17).

    Args:
        arch: classifier architecture (registry name).
        max_epochs: maximum training epochs (early stopping on validation loss).
        lr: Adam learning rate.
        patience: early-stopping patience.
        batch_size: training batch size.
    """

    arch: str = "resnet18"
    max_epochs: int = 20
    lr: float = 1e-3
    patience: int = 3
    batch_size: int = 128


@dataclass
class QualityConfig:
    """Quality gates of every generated block.

    Args:
        fid: FID settings.
        reference_classifier: generation-0 classifier (by name) used as FID feature extractor and to measure q_t
            (default: the first classifier).
        filter_classifier: classifier (by name) whose previous-generation weights the uncertainty filter uses
            (default: the first classifier).
        contact_sheets: export PNG contact sheets with sample ids of every raw block (manual review).
        pause_for_review: stop after exporting a block's contact sheets until the manual filter's reject list
            for that generation exists (re-run the same command to continue).
        sheet_per_class: samples per class in the per-generation sample sheet.
        oracle: the learned subgroup oracle for u_t where the dataset has no pixel-level one (CIFAR-20/100,
            BREEDS Living-17); without either, u_t is reported as unavailable (null).
    """

    fid: FIDConfig | None = None
    reference_classifier: str | None = None
    filter_classifier: str | None = None
    contact_sheets: bool = True
    pause_for_review: bool = False
    sheet_per_class: int = 10
    oracle: OracleConfig | None = None
