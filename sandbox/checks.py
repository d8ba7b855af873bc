"""The sandbox's known-answer checks: many seeds of a regime through the sandbox loop (``run_seed``, blocks only), the
measured mean (or variance) of a block quantity beside its closed form (``sandbox.theory``), passed when they differ by
at most ``Z`` Monte Carlo standard errors computed from the seeds, a tolerance never tuned to pass.

Each check returns one row, a dict with the keys of ``ROW_KEYS``, which ``sandbox.table`` prints as Markdown.

The variance checks run on a world built for power (``variance_world``): 1-D, one subgroup, 200 classes of n = 4
points, each class an independent replicate, so 100 seeds are 20,000 replicates and a regime that only looks like
accumulate (the real data plus the newest block alone) fails the accumulate check: its variance levels off near 0.69
where accumulate's declines to 0.652 at t = 10.
"""

from __future__ import annotations

import math

import numpy as np

from datamodules.stack_policy import StackPolicy
from sandbox import theory
from sandbox.generators import RefittedGaussian, RefittedMixture
from sandbox.loop import Regime, run_seed
from sandbox.world import GaussianMixtureWorld

#: standard errors of tolerance: a correct closed form fails one check with probability 6e-5
Z = 4.0
ROW_KEYS = ("quantity", "formula", "source", "setting", "expected", "measured", "tolerance", "passed")
GENERATIONS = 10
SHARE_GENERATIONS = 5

#: the refitted Gaussian on its own block alone; on the real data plus every block so far; on the real data plus the
#: newest block alone (what accumulate must not be mistaken for)
REPLACE = Regime("gaussian_replace", RefittedGaussian(), StackPolicy.named("replace"), 1.0)
ACCUMULATE = Regime("gaussian_accumulate", RefittedGaussian(), StackPolicy.named("accumulate"), 0.5)
REAL_PLUS_NEWEST = Regime("gaussian_real_plus_newest", RefittedGaussian(), StackPolicy.named("replace"), 0.5)
#: the 2-component mixture on its own block alone, and at p = 0.5 with the real data
MIXTURE_REPLACE = Regime("mixture_replace", RefittedMixture(2), StackPolicy.named("replace"), 1.0)
MIXTURE_REAL = Regime("mixture_replace_real", RefittedMixture(2), StackPolicy.named("replace"), 0.5)


def variance_world(classes: int = 200, n: int = 4) -> GaussianMixtureWorld:
    """1-D classes of one Gaussian subgroup (spread 1), far apart: the fitted variance of each class is a replicate."""
    return GaussianMixtureWorld(means=[[[10.0 * c]] for c in range(classes)], subgroup_shares=[1.0], spread=1.0,
                                n_train_per_class=n, n_test_per_subgroup=1)


def share_world() -> GaussianMixtureWorld:
    """The shipped config's 2-D world (90/10 subgroups) with n = 50 a class."""
    return GaussianMixtureWorld(n_train_per_class=50, n_test_per_subgroup=1)


def block_values(world: GaussianMixtureWorld, regime: Regime, seeds: int, generations: int,
                 key: str) -> np.ndarray:
    """(seeds, generations, classes) of a per-class block value, generations 1..T."""
    runs = [run_seed(world, regime, seed, generations, classify=False)[1] for seed in range(seeds)]
    return np.array([[blocks[str(t)][key] for t in range(1, generations + 1)] for blocks in runs])


def _row(quantity: str, formula: str, source: str, setting: str, expected: float, measured: float,
         standard_error: float) -> dict:
    tolerance = Z * standard_error
    return {"quantity": quantity, "formula": formula, "source": source, "setting": setting,
            "expected": float(expected), "measured": float(measured), "tolerance": float(tolerance),
            "passed": bool(abs(measured - expected) <= tolerance)}


def mean_check(per_seed: np.ndarray, expected: float, **text: str) -> dict:
    """The mean over seeds of a per-seed value against ``expected``; standard error s / sqrt(seeds)."""
    per_seed = np.asarray(per_seed, dtype=float)
    return _row(expected=expected, measured=per_seed.mean(),
                standard_error=per_seed.std(ddof=1) / math.sqrt(len(per_seed)), **text)


def variance_check(values: np.ndarray, expected: float, **text: str) -> dict:
    """The variance over seeds of ``values`` (seeds, classes), per class then averaged over classes, against
    ``expected``; standard error from the spread of the squared deviations (no normality assumed)."""
    values = np.asarray(values, dtype=float)
    seeds = len(values)
    squared = (values - values.mean(0)) ** 2 * seeds / (seeds - 1)  # its mean over seeds: the unbiased variance
    error = np.sqrt((squared.std(0, ddof=1) ** 2 / seeds).sum()) / values.shape[1]
    return _row(expected=expected, measured=squared.mean(0).mean(), standard_error=error, **text)


def replace_variance_check(seeds: int = 100) -> dict:
    world = variance_world()
    n = world.n_train_per_class
    ratio = block_values(world, REPLACE, seeds, GENERATIONS, "fitted_variance_class")[:, -1].mean(-1)
    expected = theory.variance_ratio(n, GENERATIONS, world.first_fit_variance_ratio())[-1]
    return mean_check(ratio, expected, quantity="fitted variance / true, replace",
                      formula="E Σ_t = E Σ_1 ((n-1)/n)^(t-1)", source="Shumailov et al. 2024",
                      setting=f"1-D, {world.num_classes} classes, n = {n}, t = {GENERATIONS}, {seeds} seeds")


def accumulate_variance_check(seeds: int = 100, regime: Regime = ACCUMULATE) -> dict:
    """The accumulate closed form at t = 10; ``regime`` another regime measured against it (the real data plus the
    newest block alone fails it)."""
    world = variance_world()
    n = world.n_train_per_class
    ratio = block_values(world, regime, seeds, GENERATIONS, "fitted_variance_class")[:, -1].mean(-1)
    expected = theory.accumulate_variance_ratio(n, GENERATIONS, world.first_fit_variance_ratio())[-1]
    return mean_check(ratio, expected, quantity=f"fitted variance / true, {regime.name.removeprefix('gaussian_')}",
                      formula="E Σ_t = E Σ_1 Π_{k=2..t} (1 - 1/(n k²))",
                      source="exact recursion (docs/beyond-the-paper.md)",
                      setting=f"1-D, {world.num_classes} classes, n = {n}, p = {regime.synthetic_share}, "
                              f"t = {GENERATIONS}, {seeds} seeds")


def log_variance_drift_check(seeds: int = 100) -> dict:
    """The mean step of ln Σ_t under replace, generations 2..T (the first fit is on the stratified real data)."""
    world = variance_world()
    n = world.n_train_per_class
    logs = block_values(world, REPLACE, seeds, GENERATIONS, "fitted_log_variance_class")
    steps = np.diff(logs, axis=1).mean((1, 2))
    return mean_check(steps, theory.log_variance_drift(n, world.dim), quantity="log-variance drift per generation, "
                      "replace", formula="E ln Σ_t - E ln Σ_{t-1} = ψ((n-1)/2) - ln(n/2)",
                      source="ML variance of n Gaussian points: Σ χ²_{n-1} / n",
                      setting=f"1-D, {world.num_classes} classes, n = {n}, t = 2..{GENERATIONS}, {seeds} seeds")


def wright_fisher_check(seeds: int = 100) -> dict:
    world = share_world()
    pi, n = world.real_minority_share(), world.n_train_per_class
    share = block_values(world, MIXTURE_REPLACE, seeds, SHARE_GENERATIONS, "minority_share_class")[:, -1]
    return variance_check(share, theory.wright_fisher_variance(pi, n, SHARE_GENERATIONS)[-1],
                          quantity="minority share variance across seeds, replace",
                          formula="π(1-π)(1 - (1 - 1/N)^t)", source="Wright-Fisher drift",
                          setting=f"2-D, π = {pi}, N = {n} a class, t = {SHARE_GENERATIONS}, {seeds} seeds")


def real_data_share_check(seeds: int = 100) -> dict:
    world = share_world()
    pi, n = world.real_minority_share(), world.n_train_per_class
    share = block_values(world, MIXTURE_REAL, seeds, SHARE_GENERATIONS, "minority_share_class")[:, -1]
    expected = theory.share_variance(pi, n, 0.5, SHARE_GENERATIONS)[-1]
    return variance_check(share, expected, quantity="minority share variance across seeds, real data at 1 - p",
                          formula="V_t = π(1-π)/N + p² (1 - 1/N) V_{t-1}", source="Wright-Fisher with immigration",
                          setting=f"2-D, π = {pi}, N = {n} a class, p = 0.5, t = {SHARE_GENERATIONS}, {seeds} seeds")


def minority_share_mean_check(seeds: int = 100) -> dict:
    world = share_world()
    pi = world.real_minority_share()
    share = block_values(world, MIXTURE_REPLACE, seeds, SHARE_GENERATIONS, "minority_share_class")[:, -1].mean(-1)
    return mean_check(share, pi, quantity="minority share, mean over seeds, replace", formula="E x_t = π",
                      source="Wright-Fisher: a martingale",
                      setting=f"2-D, π = {pi}, N = {world.n_train_per_class} a class, t = {SHARE_GENERATIONS}, "
                              f"{seeds} seeds")


#: every check of the table, in its order
CHECKS = (replace_variance_check, accumulate_variance_check, log_variance_drift_check, minority_share_mean_check,
          wright_fisher_check, real_data_share_check)


def run_checks(seeds: int = 100) -> list[dict]:
    return [check(seeds) for check in CHECKS]
