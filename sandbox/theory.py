"""What the sandbox must measure, in closed form (each curve is indexed by the generation t = 0, 1, ...).

* ML Gaussian refitted on its own n samples a class (``replace``, no real data): the fitted covariance of generation t
  has E[Sigma_t] = E[Sigma_1] ((n - 1) / n)^(t - 1) (Shumailov et al., Nature 2024: the ML variance of n i.i.d.
  samples of any distribution is (n - 1) / n of its variance in expectation, and each generation samples the
  previous fit). The first fit is on the stratified real set, E[Sigma_1] = first x Sigma
  (``GaussianMixtureWorld.first_fit_variance_ratio``, 1 - d spread^2 / (n trace Sigma)).
* The same Gaussian refitted on the real n points a class plus every earlier block of n (``accumulate``): the fit of
  generation t pools t n points, those of fit t - 1 and a block of n drawn from it, so
  E[Sigma_t | Sigma_{t-1}] = Sigma_{t-1} ((t-1)/t + (n-1)/(n t) + (t-1)/(n t^2)) = Sigma_{t-1} (1 - 1/(n t^2)) and
  E[Sigma_t] = E[Sigma_1] prod_{k=2..t} (1 - 1/(n k^2)): it still declines, to E[Sigma_1] (1 - (pi^2/6 - 1)/n)
  at most (0.988 -> 0.961 at n = 20, t = 10), never collapsing. (Gerstgrasser et al. 2024 bound it; this is exact.)
* Under replace the log of the fitted variance drifts by a constant each generation, whatever the variance: the ML
  covariance of n points from N(mu, Sigma) is Sigma^(1/2) W Sigma^(1/2) / n with W ~ Wishart(n - 1, I), so
  E ln det Sigma_t - E ln det Sigma_{t-1} = sum_{i=1..d} psi((n - i) / 2) - d ln(n / 2) (d = 1: psi((n-1)/2) -
  ln(n/2), -0.1048 at n = 20; below the ln((n-1)/n) = -0.0513 of the mean's decay: the typical fit collapses faster
  than the mean one).
* The minority share x_t of a class in the block generated at generation t, by a generator that recovers each
  component's share (the mixture): x_t = Binomial(N, s_t) / N, with s_t the share in the generator's training data.
  Without real data s_t = x_{t-1}: a Wright-Fisher process, E[x_t] = pi and Var x_t = pi (1 - pi) (1 - (1 - 1/N)^t).
  With the real data at share 1 - p (and the newest block at share p), s_t = (1 - p) pi + p x_{t-1}, so
  Var x_t = pi (1 - pi) / N + p^2 (1 - 1/N) Var x_{t-1}: the drift is held to pi (1 - pi) / (N (1 - p^2)) at most.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.special import digamma

from sandbox.world import GaussianMixtureWorld

if TYPE_CHECKING:
    from sandbox.loop import Regime


def variance_ratio(n: int, generations: int, first: float) -> np.ndarray:
    """E[fitted variance at t] / true variance, t = 0..generations (t = 0: the real world, 1; t = 1: ``first``)."""
    steps = np.maximum(np.arange(generations + 1) - 1, 0)
    curve = first * ((n - 1) / n) ** steps
    curve[0] = 1.0
    return curve


def share_variance(pi: float, n: int, synthetic_share: float, generations: int) -> np.ndarray:
    """Var x_t across seeds of a class's minority share in block t (t = 0: the real share, exact: 0)."""
    variance = np.zeros(generations + 1)
    p = float(synthetic_share)
    for t in range(1, generations + 1):
        variance[t] = pi * (1 - pi) / n + p ** 2 * (1 - 1 / n) * variance[t - 1]
    return variance


def wright_fisher_variance(pi: float, n: int, generations: int) -> np.ndarray:
    """pi (1 - pi) (1 - (1 - 1/N)^t): ``share_variance`` at p = 1 in closed form."""
    return pi * (1 - pi) * (1 - (1 - 1 / n) ** np.arange(generations + 1))


def accumulate_variance_ratio(n: int, generations: int, first: float) -> np.ndarray:
    """E[fitted variance at t] / true variance under accumulate (real n a class + every earlier block of n):
    ``first`` prod_{k=2..t} (1 - 1/(n k^2)); t = 0: 1."""
    factors = np.ones(generations + 1)
    factors[2:] = 1 - 1 / (n * np.arange(2, generations + 1) ** 2)
    curve = first * np.cumprod(factors)
    curve[0] = 1.0
    return curve


def log_variance_drift(n: int, dim: int = 1) -> float:
    """E ln det Sigma_t - E ln det Sigma_{t-1} of an ML Gaussian refitted on its own n samples (replace), in ``dim``
    dimensions: sum_{i=1..dim} psi((n - i)/2) - dim ln(n/2)."""
    return float(sum(digamma((n - i) / 2) for i in range(1, dim + 1)) - dim * np.log(n / 2))


def known_answers(regime: Regime, world: GaussianMixtureWorld, generations: int) -> dict[str, np.ndarray]:
    """The closed-form curves (t = 0..generations) of a regime on a world, by quantity (those the regime's generator
    ``measures``):

    * ``fitted_variance_ratio``: an ML Gaussian refitted on its own block alone (p = 1, one block kept, S = the real
      set's size), or on the real set plus every block so far (the stack keeps and draws every block, p < 1);
    * ``minority_share``: the mean over seeds of a class's minority share, the real share for a mixture generator
      (whatever the regime: the share in the training data is a mix of real and earlier blocks, each with mean pi);
    * ``minority_share_variance``: its variance across seeds, where each generator trains on the real set (unless
      p = 1) and the whole newest block alone (one block kept; the mix draws all of it).

    Quantities without a closed form for this regime are absent.
    """
    n = world.n_train_per_class
    real = world.num_classes * n
    block = regime.block_size(world)
    policy, share = regime.stack_policy, float(regime.synthetic_share)
    keeps_one = policy.kept_generations(regime.stack_generations) == 1
    draws_whole_block = share >= 1 or policy.synthetic_per_epoch(real, share, block, oversample=False) == block
    largest = max(generations - 1, 1) * block  # the stack the last generator trains on, if it keeps every block
    keeps_and_draws_all = (policy.kept_generations(regime.stack_generations) is None
                           and policy.synthetic_per_epoch(real, share, largest, oversample=False) == largest)
    measures = regime.generator.measures
    answers: dict[str, np.ndarray] = {}
    if "fitted_variance_ratio" in measures and block == real:
        if share >= 1 and keeps_one:
            answers["fitted_variance_ratio"] = variance_ratio(n, generations, world.first_fit_variance_ratio())
        elif share < 1 and keeps_and_draws_all:
            answers["fitted_variance_ratio"] = accumulate_variance_ratio(n, generations,
                                                                         world.first_fit_variance_ratio())
    if "minority_share" in measures:
        pi = world.real_minority_share()
        answers["minority_share"] = np.full(generations + 1, pi)
        if "minority_share_variance" in measures and keeps_one and draws_whole_block and block == real:
            realised = 1.0 if share >= 1 else block / (real + block)
            answers["minority_share_variance"] = share_variance(pi, n, realised, generations)
    return answers
