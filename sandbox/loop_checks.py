"""The product loop (``cli.py fit``) run on the known world with perfect generators, held against closed forms.

Each check runs one or two fits in a folder it is given, reads what a user reads (``state.json``'s block reports,
the stack's files, the generators' checkpoints) and returns rows: dicts with ``quantity``, ``formula``, ``source``,
``setting``, ``expected``, ``measured``, ``tolerance`` and ``passed``, plus ``wrong``: the closed form at settings
one generation or 10% off (p, window, keep rates), each with ``rejected`` (the measurement is further than the
tolerance from it). Every class (and every feature pixel of a class) is an independent replicate, so one fit of a
few thousand tiny classes measures a distribution; the tolerance is 4 standard errors computed from the replicates.

``fit`` runs ``cli.py fit`` with the given arguments (default: a subprocess; tests pass an in-process runner).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import yaml

from datamodules.stack import MANIFEST_NAME
from records.layout import RunLayout
from records.state import read_state
from sandbox import closed_forms as cf
from sandbox.known_world import feature_pixels, pixel_b_shares, rounded_normal_moments, subgroups_from_marker

ROOT = Path(__file__).resolve().parents[1]
STANDARD_ERRORS = 4.0
Fit = Callable[..., object]


def subprocess_fit(*args: str) -> None:
    """``python cli.py ARGS`` in a subprocess; a non-zero exit raises with its last output."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"cli.py {' '.join(args)} exited {proc.returncode}: {(proc.stderr or proc.stdout)[-2000:]}")


@dataclass(frozen=True)
class WorldFit:
    """One ``cli.py fit`` of the known world: the settings a check varies."""

    label: str
    generator: str  # "resampling" or "gaussian"
    stack_policy: str = "replace"
    synthetic_share: float = 1.0
    stack_generations: int = 1
    generations: int = 5
    num_classes: int = 2000
    train_per_class: int = 20
    b_per_class: int = 6
    block_per_class: int = 20
    keep_rates: tuple[float, float] | None = None
    fresh_per_class: int | None = None
    known_variance: float | None = None
    feature_sd: float = 16.0
    side: int = 2
    traits: bool = False
    seed: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def pi0(self) -> float:
        return self.b_per_class / self.train_per_class

    def config(self, run_dir: Path) -> dict:
        """The fit's YAML config (every stage the real one; classifiers minimal, FID and contact sheets off)."""
        shape = [1, self.side, self.side]
        model = {"num_classes": self.num_classes, "image_shape": shape}
        if self.generator == "resampling":
            class_path = "sandbox.perfect_generators.ResamplingGenerator"
        else:
            class_path = "sandbox.perfect_generators.GaussianFitGenerator"
            model["known_variance"] = self.known_variance
        data = {"source": {"class_path": "sandbox.known_world.KnownWorld",
                           "init_args": {"num_classes": self.num_classes, "train_per_class": self.train_per_class,
                                         "b_per_class": self.b_per_class, "side": self.side,
                                         "feature_sd": self.feature_sd, "traits": self.traits, "eval_per_cell": 1}},
                "regime": {"policy": self.stack_policy, "synthetic_share": self.synthetic_share,
                           "window": self.stack_generations},
                "batch_size": 10_000_000, "eval_batch_size": 10_000_000}
        if self.fresh_per_class is not None:
            data["regime"]["fresh_real_per_generation"] = self.fresh_per_class * self.num_classes
        filters = [] if self.keep_rates is None else [
            {"class_path": "sandbox.subgroup_filter.SubgroupKeepRateFilter",
             "init_args": {"keep_rates": list(self.keep_rates)}}]
        return {"seed_everything": self.seed,
                # every epoch is one batch: the generator reads its whole D_(t-1) at once; the classifiers, which no
                # check reads, take one step
                "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
                            "enable_model_summary": False, "log_every_n_steps": 1},
                "model": {"class_path": class_path, "init_args": model}, "data": data,
                "loop": {"generations": self.generations, "run_dir": str(run_dir),
                         "samples_per_generation": self.block_per_class * self.num_classes,
                         "generator_epochs": 1,
                         "keep_raw_shards": False},
                "classifiers": [{"arch": "tiny_cnn", "lr": 0.01, "max_epochs": 1, "patience": 0}],
                "filters": filters,
                "quality": {"contact_sheets": False, "sheet_per_class": 1, "fid": {"enabled": False}}, **self.extra}

    def run(self, folder: Path, fit: Fit | None = None) -> Path:
        """Run (or resume: a finished run is left as it is) this fit under ``folder``; its run directory."""
        folder = Path(folder)
        run_dir = folder / self.label
        config = folder / f"{self.label}.yaml"
        folder.mkdir(parents=True, exist_ok=True)
        config.write_text(yaml.safe_dump(self.config(run_dir), sort_keys=False))
        (fit or subprocess_fit)("fit", "--config", str(config))
        return run_dir


# ------------------------------------------------------------------------------------------ reading a run directory
def block_reports(run_dir: Path) -> dict[int, dict]:
    """The run state's per-generation block reports (q_t, u_t, majority gain, filter counts)."""
    return dict(sorted(read_state(RunLayout(run_dir).state_path).block_reports().items()))


def kept_b_share(run_dir: Path, pi0: float) -> dict[int, float]:
    """Pooled b-share of every generation's kept block, from its report: the class-weighted majority gain of the
    kept samples added to the real majority's share (subgroup a is every class's majority: pi_0 < 1/2)."""
    return {g: pi0 - r["majority_gain_kept"] for g, r in sorted(block_reports(run_dir).items())}


def stack_blocks(run_dir: Path) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) of every block the stack holds now, by generation, read through its manifest."""
    root = RunLayout(run_dir).stack_dir
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    return {b["generation"]: (torch.from_numpy(np.load(root / b["files"]["images"]["name"])),
                              torch.from_numpy(np.load(root / b["files"]["labels"]["name"])))
            for b in manifest["blocks"]}


def per_class_b_share(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(L,) float64: every class's b-share in a block (subgroups read from the pixels)."""
    b = subgroups_from_marker(images).double()
    counts = torch.bincount(labels, minlength=num_classes).double()
    return torch.bincount(labels, weights=b, minlength=num_classes) / counts


def generator_buffers(run_dir: Path, generation: int) -> dict[str, torch.Tensor]:
    """The fitted state of generation ``generation``'s generator (its checkpoint's ``state_dict``)."""
    path = RunLayout(run_dir).generator_checkpoint(generation)
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


# ------------------------------------------------------------------------------------------ rows
def row(quantity: str, formula: str, source: str, setting: str, expected: float, measured: float, tolerance: float,
        wrong: dict[str, float] | None = None, passed: bool | None = None) -> dict:
    """One check's result; ``wrong``: setting -> the closed form there, each rejected when further than the
    tolerance from the measurement."""
    return {"quantity": quantity, "formula": formula, "source": source, "setting": setting,
            "expected": float(expected), "measured": float(measured), "tolerance": float(tolerance),
            "passed": bool(abs(measured - expected) <= tolerance) if passed is None else bool(passed),
            "wrong": [{"setting": s, "expected": float(v), "rejected": bool(abs(measured - v) > tolerance)}
                      for s, v in (wrong or {}).items()]}


def trajectory_row(quantity: str, formula: str, source: str, setting: str, expected: Sequence[float],
                   measured: Sequence[float], tolerance: Sequence[float], wrong: dict[str, Sequence[float]]) -> dict:
    """A row over generations 1..T: passed when every generation is within its tolerance; a wrong setting is
    rejected when some generation is further than its tolerance; expected and measured shown at T."""
    expected, measured, tolerance = (np.asarray(x, dtype=float) for x in (expected, measured, tolerance))
    result = row(quantity, formula, source, setting, expected[-1], measured[-1], tolerance[-1],
                 passed=bool((np.abs(measured - expected) <= tolerance).all()))
    result["wrong"] = [{"setting": s, "expected": float(np.asarray(v)[-1]),
                        "rejected": bool((np.abs(measured - np.asarray(v)) > tolerance).any())}
                       for s, v in wrong.items()]
    return result


def off_by(value: float, factor: float = 1.1) -> float:
    return value * factor


# ------------------------------------------------------------------------------------------ 1. subgroup odds
ODDS_SOURCE = "Bayes' rule on a filter keeping subgroup g with probability q_g; resampling = a perfect generator"


def _odds_tolerances(run_dir: Path, fit_settings: WorldFit, keep_rates: tuple[float, float]) -> np.ndarray:
    """4 standard errors of the pooled share (the per-class spread of the newest block, the widest, over the classes)
    plus the bound on the many-class limit's bias: |1/2 g''| Var(m) with g the odds map (Jensen)."""
    images, labels = stack_blocks(run_dir)[fit_settings.generations]
    spread = float(per_class_b_share(images, labels, fit_settings.num_classes).var(unbiased=True))
    q_a, q_b = keep_rates
    r = q_b / q_a
    curvature = max(abs(2 * r * (r - 1) / (1 + (r - 1) * m) ** 3) for m in np.linspace(0, 1, 101))
    tolerance = STANDARD_ERRORS * math.sqrt(spread / fit_settings.num_classes) + 0.5 * curvature * spread
    return np.full(fit_settings.generations, tolerance)


def subgroup_share_under_a_biased_filter(folder: Path, fit: Fit | None = None,
                                         settings: Sequence[WorldFit] | None = None) -> list[dict]:
    """The kept blocks' b-share under a subgroup-biased filter follows the odds recursion
    (``closed_forms.filtered_share_trajectory``), with the wrong p, window and keep rates rejected."""
    settings = settings or ODDS_SETTINGS
    rows = []
    for s in settings:
        run_dir = s.run(folder, fit)
        measured = list(kept_b_share(run_dir, s.pi0).values())

        def expected(share=s.synthetic_share, window=s.stack_generations, rates=s.keep_rates, fit_settings=s):
            regime_window = None if fit_settings.stack_policy in ("subsample", "accumulate") else window
            regime_share = None if fit_settings.stack_policy == "accumulate" else share
            return cf.filtered_share_trajectory(fit_settings.pi0, rates, fit_settings.generations,
                                                fit_settings.train_per_class, fit_settings.block_per_class,
                                                regime_share, regime_window)

        q_a, q_b = s.keep_rates
        wrong = {f"q_b {q_b * 1.1:.3g} (10% more)": expected(rates=(q_a, q_b * 1.1)),
                 f"q_a {q_a * 0.9:.3g} (10% less)": expected(rates=(q_a * 0.9, q_b))}
        if s.synthetic_share < 1:
            wrong[f"p {s.synthetic_share * 1.1:.3g}"] = expected(share=min(s.synthetic_share * 1.1, 1.0))
            wrong[f"p {s.synthetic_share * 0.9:.3g}"] = expected(share=s.synthetic_share * 0.9)
        else:
            wrong["p 0.9"] = expected(share=0.9)
        if s.stack_policy == "fifo":
            wrong[f"window {s.stack_generations - 1}"] = expected(window=s.stack_generations - 1)
            wrong[f"window {s.stack_generations + 1}"] = expected(window=s.stack_generations + 1)
        truth = expected()
        shifted = [s.pi0, *truth[:-1]]
        wrong["one generation late"] = shifted
        if s.stack_policy == "replace" and s.synthetic_share >= 1:
            formula = "odds_b:a(t) = odds_0 (q_b / q_a)^t"
        elif s.stack_policy == "replace":
            formula = (f"pi_t = g(m_(t-1)), m = (1-p) pi_0 + p pi_(t-1) -> fixed point "
                       f"{cf.replace_fixed_point(s.pi0, s.keep_rates, s.synthetic_share):.4f}")
        else:
            formula = "pi_t = g(m_(t-1)), m = (1-p) pi_0 + p (kept share of the stack the regime draws from)"
        rows.append(trajectory_row(
            "b-share of the kept block", formula + "; g(m) = q_b m / (q_b m + q_a (1 - m))", ODDS_SOURCE,
            _describe(s), truth, measured, _odds_tolerances(run_dir, s, s.keep_rates), wrong))
    return rows


# ------------------------------------------------------------------------------------------ 2. Wright-Fisher drift
def minority_share_variance(folder: Path, fit: Fit | None = None,
                            settings: Sequence[WorldFit] | None = None) -> list[dict]:
    """The per-class b-share of the newest block has the Wright-Fisher variance of its regime
    (``closed_forms.share_variance``): measured as the mean over classes of (share - pi_0)^2 (E share = pi_0)."""
    settings = settings or DRIFT_SETTINGS
    rows = []
    for s in settings:
        run_dir = s.run(folder, fit)
        images, labels = stack_blocks(run_dir)[s.generations]
        # every (class, pixel) a replicate; a class's pixels share their images' draws, so a class is the unit
        deviations = ((pixel_b_shares(images, labels, s.num_classes) - s.pi0) ** 2).mean(dim=1)
        measured = float(deviations.mean())
        tolerance = STANDARD_ERRORS * float(deviations.std(unbiased=True)) / math.sqrt(s.num_classes)

        def expected(share=s.synthetic_share, window=s.stack_generations, generations=s.generations, fit_settings=s):
            accumulate = fit_settings.stack_policy == "accumulate"
            return cf.share_variance(fit_settings.pi0, generations, fit_settings.train_per_class,
                                     fit_settings.block_per_class, None if accumulate else share,
                                     None if accumulate else window)[-1]

        if s.stack_policy == "accumulate":
            as_fifo = replace(s, stack_policy="fifo")
            wrong = {"replace at p = 1": expected(share=1.0, window=1, fit_settings=as_fifo),
                     "every block kept, the real data dropped": expected(share=1.0, window=None, fit_settings=as_fifo)}
        else:
            wrong = {"p 0.9": expected(share=0.9), f"window {s.stack_generations + 1}":
                     expected(window=s.stack_generations + 1)}
            if s.stack_generations > 1:
                wrong[f"window {s.stack_generations - 1}"] = expected(window=s.stack_generations - 1)
        formula = {"replace": "pi_0 (1 - pi_0) (1 - (1 - 1/n_b)^t)",
                   "fifo": "Var pi_t = (pi_0 (1 - pi_0) - Var m) / n_b + Var m, m = mean of the last K blocks",
                   "accumulate": "Var pi_t = (pi_0 (1 - pi_0) - Var m) / n_b + Var m, m = share of real + all blocks"}
        rows.append(row("variance of a class's b-share (block T)", formula[s.stack_policy],
                        "Wright-Fisher sampling (binomial n_b around the training set's share)", _describe(s),
                        expected(), measured, tolerance, wrong))
    return rows


# ------------------------------------------------------------------------------------------ 3. Gaussian variance
def _feature_variances(run_dir: Path, generation: int) -> torch.Tensor:
    """(L, features) fitted variances of generation ``generation``'s Gaussian (the marker pixel left out)."""
    variances = generator_buffers(run_dir, generation)["variances"]
    return feature_pixels(variances)


def gaussian_variance(folder: Path, fit: Fit | None = None,
                      settings: Sequence[WorldFit] | None = None) -> list[dict]:
    """E Sigma_T / E Sigma_1 of the per-(class, pixel) ML Gaussian: ((n-1)/n)^(T-1) under replace,
    prod_{k=2..T} (1 - 1/(n k^2)) under accumulate; under replace also the mean log-variance step
    psi((n-1)/2) - ln(n/2). Tolerance: 4 standard errors of the ratio of means (delta method over replicates)."""
    settings = settings or GAUSSIAN_SETTINGS
    rows = []
    for s in settings:
        run_dir = s.run(folder, fit)
        n, last = s.block_per_class, s.generations
        first = _feature_variances(run_dir, 1).flatten()
        final = _feature_variances(run_dir, last).flatten()
        ratio = float(final.mean() / first.mean())
        spread = (final - ratio * first) / first.mean()
        tolerance = STANDARD_ERRORS * float(spread.std(unbiased=True)) / math.sqrt(len(first))
        if s.stack_policy == "replace":
            rows.append(row("E Sigma_T / E Sigma_1 (Gaussian refit)", "((n - 1) / n)^(T - 1)",
                            "Shumailov et al., Nature 2024", _describe(s), cf.replace_variance_ratio(n, last), ratio,
                            tolerance, {"one generation more": cf.replace_variance_ratio(n, last + 1),
                                        "one generation fewer": cf.replace_variance_ratio(n, last - 1),
                                        "accumulate": cf.accumulate_variance_ratio(n, last)}))
            steps = torch.stack([_feature_variances(run_dir, t).flatten().log() for t in range(1, last + 1)])
            per_replicate = (steps[1:] - steps[:-1]).mean(dim=0)  # increments are independent across generations
            drift = float(per_replicate.mean())
            drift_tolerance = STANDARD_ERRORS * float(per_replicate.std(unbiased=True)) / math.sqrt(len(first))
            rows.append(row("E[ln Sigma_t - ln Sigma_(t-1)]", "psi((n - 1) / 2) - ln(n / 2)",
                            "n Sigma_t / Sigma_(t-1) ~ chi2_(n-1); E ln chi2_k = psi(k/2) + ln 2", _describe(s),
                            cf.log_variance_drift(n), drift, drift_tolerance,
                            {"n 10% larger": cf.log_variance_drift(round(n * 1.1)),
                             "ln((n - 1) / n) (the variance's own drift)": math.log((n - 1) / n)}))
        else:
            rows.append(row("E Sigma_T / E Sigma_1 (Gaussian refit)", "prod_(k=2..T) (1 - 1 / (n k^2))",
                            "Gerstgrasser et al. 2024, Is model collapse inevitable?", _describe(s),
                            cf.accumulate_variance_ratio(n, last), ratio, tolerance,
                            {"replace": cf.replace_variance_ratio(n, last),
                             "real data dropped (synthetic blocks only)": _accumulate_without_real(n, last)}))
    return rows


def _accumulate_without_real(n: int, generations: int) -> float:
    """E Sigma_T / E Sigma_1 when every block is kept but the real data is not (a wrong accumulate): generation 2
    fits block 1 alone ((n - 1) / n), then blocks pool as under accumulate from k = 1."""
    value = (n - 1) / n
    for k in range(1, generations - 1):
        value *= 1.0 - 1.0 / (n * (k + 1) ** 2)
    return value


# ------------------------------------------------------------------------------------------ 4. fresh real data
def fresh_mean_error(folder: Path, fit: Fit | None = None, settings: Sequence[WorldFit] | None = None) -> list[dict]:
    """``stack_policy: fresh`` with a known-variance Gaussian: the fitted mean's squared error, averaged over
    generations 3..T, against He, Xu and Cheng's recursion (stationary 2/3 sigma^2 / n at equal counts); generation 1
    (real data alone) against sigma^2 / n. Replicates: every (class, feature pixel); tolerance 4 standard errors of
    the per-replicate time averages."""
    settings = settings or FRESH_SETTINGS
    rows = []
    for s in settings:
        run_dir = s.run(folder, fit)
        mean, variance = rounded_normal_moments(128.0, s.feature_sd)
        synthetic_variance = s.known_variance + 1.0 / 12.0  # the stored samples are rounded to integers (Sheppard)
        n_r, n_s = s.fresh_per_class, s.block_per_class
        errors = torch.stack([(feature_pixels(generator_buffers(run_dir, t)["means"]) - mean).flatten() ** 2
                              for t in range(1, s.generations + 1)])
        window = range(3, s.generations + 1)
        averaged = errors[2:].mean(dim=0)

        def expected(share_synthetic=n_s, real=n_r, variance=variance, synthetic_variance=synthetic_variance,
                     window=window):
            return float(np.mean([cf.fresh_mean_error(variance, real, share_synthetic, t, synthetic_variance)
                                  for t in window]))

        tolerance = STANDARD_ERRORS * float(averaged.std(unbiased=True)) / math.sqrt(averaged.numel())
        w = n_s / (n_r + n_s)
        w_off = min(w * 1.1, 0.99)
        rows.append(row("E (mu_t - mu)^2, generations 3..T (fresh)",
                        "V_t = (1-w)^2 s^2/n_r + w^2 (V_(t-1) + s^2/n_s) -> "
                        f"{cf.fresh_stationary_error(1.0, n_r, n_s) * n_r:.4f} s^2/n_r",
                        "He, Xu, Cheng 2025, Golden ratio weighting prevents model collapse", _describe(s),
                        expected(), float(averaged.mean()), tolerance,
                        {f"synthetic weight w {w_off:.3g} (10% more)": expected(
                            share_synthetic=w_off / (1 - w_off) * n_r),
                         f"synthetic weight w {w * 0.9:.3g} (10% less)": expected(
                            share_synthetic=w * 0.9 / (1 - w * 0.9) * n_r),
                         "no fresh real data (replace)": _replace_mean_error(variance, n_r, n_s, synthetic_variance,
                                                                             window),
                         "real data alone": variance / n_r}))
        first = errors[0]
        rows.append(row("E (mu_1 - mu)^2 (real data alone)", "s^2 / n_r", "the variance of a mean", _describe(s),
                        variance / n_r, float(first.mean()),
                        STANDARD_ERRORS * float(first.std(unbiased=True)) / math.sqrt(first.numel()),
                        {"n_r 10% larger": variance / round(n_r * 1.1)}))
    return rows


def _replace_mean_error(variance: float, n_r: int, n_s: int, synthetic_variance: float, window: range) -> float:
    """The same pooled fit when the real data are the same n_r samples every generation (not fresh): the error
    of the real mean never averages out, E e_t^2 = E[((1-w) e_r + w (e_(t-1) + s_t))^2] with e_r fixed."""
    w = n_s / (n_r + n_s)
    real = variance / n_r  # Var e_r
    var_e, cov = real, real  # generation 1: e_1 = e_r
    values = []
    for t in range(2, max(window) + 1):
        var_e, cov = ((1 - w) ** 2 * real + w * w * (var_e + synthetic_variance / n_s) + 2 * (1 - w) * w * cov,
                      (1 - w) * real + w * cov)
        if t in window:
            values.append(var_e)
    return float(np.mean(values))


def _describe(s: WorldFit) -> str:
    parts = [f"{s.stack_policy}", f"p={s.synthetic_share:.3g}"]
    if s.stack_policy == "fifo":
        parts.append(f"K={s.stack_generations}")
    if s.keep_rates is not None:
        parts.append(f"q_a,q_b={s.keep_rates[0]:g},{s.keep_rates[1]:g}")
    if s.fresh_per_class is not None:
        parts.append(f"n_r={s.fresh_per_class} fresh")
    else:
        parts.append(f"n_r={s.train_per_class}")
    parts += [f"n_b={s.block_per_class}", f"pi_0={s.pi0:g}", f"T={s.generations}", f"{s.num_classes} classes"]
    return ", ".join(parts)


# ------------------------------------------------------------------------------------------ the settings
_MEAN = dict(generator="resampling", num_classes=100, train_per_class=100, b_per_class=30, block_per_class=400)
ODDS_SETTINGS = (
    WorldFit("odds_replace_p1_a", keep_rates=(1.0, 0.6), generations=4, **{**_MEAN, "block_per_class": 200}),
    WorldFit("odds_replace_p1_b", keep_rates=(0.5, 0.8), generations=4, **{**_MEAN, "block_per_class": 200}),
    WorldFit("odds_replace_p05", synthetic_share=0.5, keep_rates=(0.5, 1.0), generations=5, **_MEAN),
    WorldFit("odds_replace_p075", synthetic_share=0.75, keep_rates=(0.5, 1.0), generations=5,
             **{**_MEAN, "block_per_class": 800}),
    WorldFit("odds_subsample_p05", stack_policy="subsample", synthetic_share=0.5, keep_rates=(0.5, 1.0),
             generations=5, **_MEAN),
    WorldFit("odds_subsample_p075", stack_policy="subsample", synthetic_share=0.75, keep_rates=(0.5, 1.0),
             generations=5, **{**_MEAN, "block_per_class": 700}),
)
_DRIFT = dict(generator="resampling", num_classes=400, train_per_class=10, b_per_class=3, block_per_class=10, side=6,
              traits=True)
DRIFT_SETTINGS = (
    WorldFit("drift_replace_p1_n10", generations=3, **_DRIFT),
    WorldFit("drift_replace_p1_n20", generations=3, **{**_DRIFT, "train_per_class": 20, "b_per_class": 6,
                                                       "block_per_class": 20}),
    WorldFit("drift_fifo_k2_p1", stack_policy="fifo", stack_generations=2, generations=4, **_DRIFT),
    WorldFit("drift_fifo_k2_p1_t6", stack_policy="fifo", stack_generations=2, generations=6, **_DRIFT),
    WorldFit("drift_accumulate_n10", stack_policy="accumulate", synthetic_share=0.5, generations=3, **_DRIFT),
    WorldFit("drift_accumulate_n20", stack_policy="accumulate", synthetic_share=0.5, generations=3,
             **{**_DRIFT, "train_per_class": 20, "b_per_class": 6, "block_per_class": 20}),
)
_GAUSS = dict(generator="gaussian", num_classes=200, b_per_class=0, side=6)
GAUSSIAN_SETTINGS = (
    WorldFit("gauss_replace_n8", generations=5, train_per_class=8, block_per_class=8, **_GAUSS),
    WorldFit("gauss_replace_n10", generations=6, train_per_class=10, block_per_class=10, **_GAUSS),
    WorldFit("gauss_accumulate_n4", stack_policy="accumulate", synthetic_share=0.5, generations=6,
             train_per_class=4, block_per_class=4, **_GAUSS),
    WorldFit("gauss_accumulate_n8", stack_policy="accumulate", synthetic_share=0.5, generations=5,
             train_per_class=8, block_per_class=8, **_GAUSS),
)
_FRESH = dict(generator="gaussian", stack_policy="fresh", num_classes=200, b_per_class=0, generations=9, side=8,
              known_variance=rounded_normal_moments(128.0, 16.0)[1])
FRESH_SETTINGS = (
    WorldFit("fresh_equal", synthetic_share=0.5, train_per_class=10 * 8, fresh_per_class=8, block_per_class=8,
             **_FRESH),
    WorldFit("fresh_third", synthetic_share=1 / 3, train_per_class=10 * 8, fresh_per_class=8, block_per_class=4,
             **_FRESH),
)


def all_rows(folder: Path, fit: Fit | None = None) -> list[dict]:
    """Every check's rows (about a minute or two on 2 cores)."""
    folder = Path(folder)
    return [*subgroup_share_under_a_biased_filter(folder, fit), *minority_share_variance(folder, fit),
            *gaussian_variance(folder, fit), *fresh_mean_error(folder, fit)]
