"""What the sandbox must measure, in closed form (each curve is indexed by the generation t = 0, 1, ...).

* ML Gaussian refitted on its own n samples a class (``replace``, no real data): the fitted covariance of generation t
  has E[Sigma_t] = E[Sigma_1] ((n - 1) / n)^(t - 1) (Shumailov et al., Nature 2024: the ML variance of n i.i.d.
  samples of any distribution is (n - 1) / n of its variance in expectation, and each generation samples the
  previous fit). The first fit is on the stratified real set, E[Sigma_1] = first x Sigma
  (``GaussianMixtureWorld.first_fit_variance_ratio``, 1 - d spread^2 / (n trace Sigma)).
* The minority share x_t of a class in the block generated at generation t, by a generator that recovers each
  component's share (the mixture): x_t = Binomial(N, s_t) / N, with s_t the share in the generator's training data.
  Without real data s_t = x_{t-1}: a Wright-Fisher process, E[x_t] = pi and Var x_t = pi (1 - pi) (1 - (1 - 1/N)^t).
  With the real data at share 1 - p (and the newest block at share p), s_t = (1 - p) pi + p x_{t-1}, so
  Var x_t = pi (1 - pi) / N + p^2 (1 - 1/N) Var x_{t-1}: the drift is held to pi (1 - pi) / (N (1 - p^2)) at most.
"""

from __future__ import annotations

import numpy as np

from datamodules.mixing import synthetic_per_epoch
from sandbox.world import GaussianMixtureWorld


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


def known_answers(regime: dict, world: dict, generations: int) -> dict[str, np.ndarray]:
    """The closed-form curves (t = 0..generations) that a sandbox run's regime and world have, by quantity:

    * ``fitted_variance_ratio``: an ML Gaussian refitted on its own block alone (p = 1, one block kept, S = the real
      set's size);
    * ``minority_share``: the mean over seeds of a class's minority share, the real share for a mixture generator
      (whatever the regime: the share in the training data is a mix of real and earlier blocks, each with mean pi);
    * ``minority_share_variance``: its variance across seeds, where each generator trains on the real set (unless
      p = 1) and the whole newest block alone (one block kept; the mix draws all of it).

    Quantities without a closed form for this regime are absent.
    """
    source = GaussianMixtureWorld(**world)
    n = source.n_train_per_class
    block = int(regime.get("samples_per_generation") or source.num_classes * n)
    keeps_one = regime.get("stack_policy") == "replace" or (
        regime.get("stack_policy") == "fifo" and int(regime.get("stack_generations", 3)) == 1)
    share = float(regime.get("synthetic_share", 1.0))
    answers: dict[str, np.ndarray] = {}
    if regime.get("generator") == "gaussian" and share >= 1 and keeps_one and block == source.num_classes * n:
        answers["fitted_variance_ratio"] = variance_ratio(n, generations, source.first_fit_variance_ratio())
    if regime.get("generator") == "mixture":
        pi = source.real_minority_share()
        answers["minority_share"] = np.full(generations + 1, pi)
        real = source.num_classes * n
        drawn = block if share >= 1 else synthetic_per_epoch(real, share, block)
        if keeps_one and drawn == block and block == real:
            realised = 1.0 if share >= 1 else block / (real + block)
            answers["minority_share_variance"] = share_variance(pi, n, realised, generations)
    return answers
