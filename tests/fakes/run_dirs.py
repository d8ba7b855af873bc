"""Run directories as `cli.py fit` leaves them, with known values, for the report's tests: 3 seeds, generations 0-2,
2 classifiers; 1 - MEO grows by a known factor per generation, so every number of the report has a known answer."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from common.image_views import ImageView
from datamodules.facts import DatasetFacts

SEEDS = (0, 1, 2)
GENERATIONS = (0, 1, 2)
CLASSIFIERS = ("lenet", "vgg19")
BASE_BIAS = {0: 0.10, 1: 0.12, 2: 0.14}  # 1 - MEO at generation 0, per seed
GROWTH = {"lenet": 2.0, "vgg19": 0.5}  # B_{t+1} = GROWTH * B_t for every seed: A_t is exact


def acc_value(seed: int, generation: int, classifier: str) -> float:
    return 0.5 + 0.1 * seed + 0.01 * generation + (0.2 if classifier == "vgg19" else 0.0)


def make_row(seed: int, generation: int, classifier: str, dataset: str) -> dict:
    bias = BASE_BIAS[seed] * GROWTH[classifier] ** generation
    ranks = [0.5 + 0.01 * seed, 0.7 + 0.01 * seed, 0.9 + 0.01 * seed]  # gap 0.4 at every generation: A_t = 1
    return {
        "generation": generation, "classifier": classifier, "arch": classifier, "seed": seed, "dataset": dataset,
        "target_share": 0.5, "realised_synthetic_share": 0.5, "acc": acc_value(seed, generation, classifier),
        "meo": 1.0 - bias,
        "di": 0.9, "md": 0.05 * (seed + 1), "meo_class": 0.95 - 0.01 * seed, "di_class": 0.8, "md_class": 0.1,
        "acc_rank": ranks, "group_acc": [[0.5, 0.7, 0.9]], "n_real": 100, "n_synthetic": 50 * (generation > 0),
        "stack_size": 0, "stack_generations": [], "epochs": 1, "wall_s": 1.0, "fid": None,
        "ablation_acc": {"mask": 0.4 + 0.1 * seed, "box": 0.3}, "ablation_drop": {"mask": 0.1, "box": 0.2},
        "quality_q": None, "imbalance_u": None,
    }


def dataset_card(dataset: str, subgroups: str = "pixels", noun: str = "colour",
                 fairness_reading: str = "pooled") -> dict:
    """The card a run records for its dataset: 1 class of 3 subgroups, as the known-value rows have."""
    return DatasetFacts(name=dataset, class_names=("zero",), image_shape=(3, 8, 8), classifier_view=ImageView(8),
                        group_names=("g0", "g1", "g2"), subgroups=subgroups, subgroup_noun=noun,
                        fairness_reading=fairness_reading).to_json()


def make_run(path: Path, seed: int, *, dataset: str = "colored_mnist", share: float = 0.5,
             samples: bool = True, write_results: bool = True, planned: int = 2, rows: list[dict] | None = None,
             classifiers: tuple[str, ...] = CLASSIFIERS, card: dict | None = None,
             config_edit: Callable[[dict], None] | None = None) -> Path:
    """A run directory; ``planned`` = loop.generations of its config, ``rows`` replace the known-value rows,
    ``card`` is the dataset card its state records (default: pixel subgroups called colours), ``config_edit``
    changes the config before it is written (e.g. a data-source argument or a classifier's ``pretrained``)."""
    path.mkdir(parents=True)
    config = {"seed_everything": seed, "data": {"source": {"name": dataset},
                                                "regime": {"policy": "fifo", "window": 3, "synthetic_share": share}},
              "loop": {"run_dir": str(path), "generations": planned},
              "classifiers": [{"arch": c} for c in classifiers],
              "filters": [{"class_path": "filters.UncertaintyFilter", "init_args": {"ratio": 0.1}}]}
    if config_edit is not None:
        config_edit(config)
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    if rows is None:
        rows = [make_row(seed, g, c, dataset) for g in GENERATIONS for c in classifiers]
    if write_results:
        (path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    blocks = {str(g): {"fid": 100.0 + 10 * g + seed, "fid_kept": 90.0 + 10 * g + seed,
                       "fid_extractor": "classifier:lenet", "filter_kept": 50,
                       "filter_dropped": 0, "quality_q": 0.9, "imbalance_u": 0.1} for g in GENERATIONS[1:]}
    state = {"version": 1, "completed": [], "results": rows, "blocks": blocks,
             "dataset": card if card is not None else dataset_card(dataset)}
    (path / "state.json").write_text(json.dumps(state))
    if samples:
        for g in GENERATIONS[1:]:
            (path / f"gen_{g:02d}").mkdir()
            Image.fromarray(np.full((20, 30 + g, 3), 40 * g, dtype=np.uint8)).save(path / f"gen_{g:02d}/samples.png")
    return path


def three_seeds(root: Path, name: str = "mnist_biased", **kw) -> list[Path]:
    return [make_run(root / name / f"seed_{s}", s, **kw) for s in SEEDS]
