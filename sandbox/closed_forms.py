"""Closed forms the product loop's checks (``sandbox.loop_checks``) are held against, each with its derivation.

Notation, per class (every class is an independent replicate): n_r real training samples of which a share pi_0 is of
subgroup b; a generated block of n_b samples per class; p the synthetic share (``data.regime.synthetic_share``); K
the window (``data.regime.window``); q_a, q_b the keep rates of a subgroup-biased filter. Generation t >= 1 trains a
generator on D_{t-1} (generation 1 on the real data alone) and pushes its kept block t.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import digamma


def odds_map(share: float, keep_rates: tuple[float, float]) -> float:
    """The b-share among the kept samples of a block whose b-share is ``share``, when a filter keeps subgroup a with
    probability q_a and b with q_b: odds_b:a multiply by q_b / q_a (Bayes' rule on the kept samples),
    share' = q_b s / (q_b s + q_a (1 - s))."""
    q_a, q_b = keep_rates
    return q_b * share / (q_b * share + q_a * (1.0 - share))


def pure_replacement_share(pi0: float, keep_rates: tuple[float, float], generation: int) -> float:
    """b-share of the kept block t under pure replacement (p = 1, K = 1) with a perfect generator:
    odds_t = odds_0 (q_b / q_a)^t, since generator t resamples block t - 1 (generation 1: the real data) and the
    filter multiplies the odds once per generation (Shumailov et al. 2024's setting with a biased selection)."""
    q_a, q_b = keep_rates
    odds = pi0 / (1.0 - pi0) * (q_b / q_a) ** generation
    return odds / (1.0 + odds)


def filtered_share_trajectory(pi0: float, keep_rates: tuple[float, float], generations: int, n_real: int,
                              n_block: int, share: float | None, window: int | None) -> list[float]:
    """Expected b-share of the kept blocks 1..T of the product loop with a perfect (resampling) generator, in the
    many-class limit (the deterministic recursion of the pooled shares).

    Generator t draws its block from D_{t-1}, whose b-share is m_{t-1} = (R pi_0 + S s_{t-1}) / (R + S), with R the
    real samples an epoch uses (n_r; none at p = 1 once the stack holds a block) and S the synthetic ones: the whole
    stack for ``share=None`` (accumulate) and p = 1, else min(round(p / (1 - p) n_r), stack size), drawn uniformly
    from the stack, so their expected b-share is the stack's, s_{t-1} = sum_k K_k pi_k / sum_k K_k over the blocks k
    the stack keeps (the last ``window``; None: all). The filter keeps pi_t = odds_map(m_{t-1}) of a block, whose
    kept size is K_t = n_b (q_a (1 - m_{t-1}) + q_b m_{t-1}). Generation 1: m_0 = pi_0.

    Fixed point for replace (K = 1) at p < 1 once the stack exceeds the p target: with r = q_b / q_a and
    m = (1 - p) pi_0 + p pi, pi* solves pi = r m / (1 + (r - 1) m), i.e. the root in [0, 1] of
    (r - 1) p pi^2 + (1 + (r - 1)(1 - p) pi_0 - r p) pi - r (1 - p) pi_0 = 0 (``replace_fixed_point``).
    """
    q_a, q_b = keep_rates
    blocks: list[tuple[float, float]] = []  # (kept size, b-share) of every block pushed, oldest first
    shares = []
    m = pi0
    for _ in range(generations):
        kept = n_block * (q_a * (1.0 - m) + q_b * m)
        pi = odds_map(m, keep_rates)
        blocks.append((kept, pi))
        shares.append(pi)
        stack = blocks if window is None else blocks[-window:]
        stack_size = sum(k for k, _ in stack)
        stack_share = sum(k * s for k, s in stack) / stack_size
        if share is None or share >= 1.0:
            synthetic = stack_size
        else:
            synthetic = min(round(share / (1.0 - share) * n_real), stack_size)
        real = 0 if share is not None and share >= 1.0 else n_real
        m = (real * pi0 + synthetic * stack_share) / (real + synthetic)
    return shares


def replace_fixed_point(pi0: float, keep_rates: tuple[float, float], share: float) -> float:
    """pi*, the b-share the kept blocks converge to under replace at p < 1 (derivation:
    ``filtered_share_trajectory``)."""
    q_a, q_b = keep_rates
    r = q_b / q_a
    a, b, c = (r - 1.0) * share, 1.0 + (r - 1.0) * (1.0 - share) * pi0 - r * share, -r * (1.0 - share) * pi0
    if abs(a) < 1e-15:
        return -c / b
    roots = [(-b + sign * math.sqrt(b * b - 4 * a * c)) / (2 * a) for sign in (1.0, -1.0)]
    return next(x for x in roots if -1e-12 <= x <= 1 + 1e-12)


def share_variance(pi0: float, generations: int, n_real: int, n_block: int, share: float | None,
                   window: int | None) -> list[float]:
    """Var(pi_t), t = 1..T, of a class's b-share in block t with a perfect generator and no filter, for the regimes
    whose epoch uses the whole stack (replace and fifo with the stack at most the p target or p = 1; accumulate):
    Wright-Fisher sampling with the regime's effective population.

    Given D_{t-1}, block t's b-count is binomial(n_b, m_{t-1}), where m_{t-1} = a_0 pi_0 + sum_k a_k pi_k is the
    training set's b-share (weights a: the real samples' and each kept block's share of D_{t-1}). So E pi_t = pi_0
    and Var pi_t = E[m (1 - m)] / n_b + Var m = (pi_0 (1 - pi_0) - Var m) / n_b + Var m, with
    Var m = a' C a and Cov(pi_t, pi_j) = sum_k a_k Cov(pi_k, pi_j) (j < t): an exact recursion on the covariance
    matrix C. Pure replacement (p = 1, K = 1) gives the classic pi_0 (1 - pi_0) (1 - (1 - 1/n_b)^t)
    (``wright_fisher_variance``); the real data (fixed, exact share pi_0) and a longer window shrink it.
    """
    cov = np.zeros((generations + 1, generations + 1))  # index 0 unused (pi_0 is a constant)
    result = []
    for t in range(1, generations + 1):
        weights = np.zeros(generations + 1)
        previous = list(range(1, t))
        kept = previous if window is None else previous[-window:]
        stack_size = n_block * len(kept)
        if share is None or (share >= 1.0 and kept):
            synthetic = stack_size
        else:
            synthetic = min(round(share / (1.0 - share) * n_real), stack_size) if kept else 0
        real = 0 if (share is not None and share >= 1.0 and kept) else n_real
        if synthetic and synthetic != stack_size:
            raise ValueError("share_variance needs an epoch that uses the whole stack (a random subset of it is not "
                             "a linear regime)")
        for k in kept:
            weights[k] = (synthetic / len(kept)) / (real + synthetic)
        var_m = float(weights @ cov @ weights)
        var_t = (pi0 * (1.0 - pi0) - var_m) / n_block + var_m
        for j in range(1, t):
            cov[t, j] = cov[j, t] = float(weights @ cov[:, j])
        cov[t, t] = var_t
        result.append(var_t)
    return result


def wright_fisher_variance(pi0: float, population: int, generation: int) -> float:
    """Var of an allele share after t generations of Wright-Fisher sampling of N: pi_0 (1 - pi_0) (1 - (1 - 1/N)^t)
    (e.g. Ewens, Mathematical Population Genetics, 2004, eq. 1.9's heterozygosity decay)."""
    return pi0 * (1.0 - pi0) * (1.0 - (1.0 - 1.0 / population) ** generation)


def replace_variance_ratio(n: int, generation: int) -> float:
    """E Sigma_t / E Sigma_1 = ((n - 1) / n)^(t - 1) for a Gaussian refitted by maximum likelihood on the n samples
    of its predecessor (replace; Shumailov et al., Nature 2024): E[ML variance of n draws] = (n - 1) / n Sigma."""
    return ((n - 1) / n) ** (generation - 1)


def accumulate_variance_ratio(n: int, generation: int) -> float:
    """E Sigma_t / E Sigma_1 = prod_{k=2..t} (1 - 1 / (n k^2)) for a Gaussian refitted by maximum likelihood on the
    real n samples plus every earlier generation's n (accumulate; Gerstgrasser et al. 2024, "Is model collapse
    inevitable?", their series).

    Derivation: Sigma_{k+1} is the ML variance of k n samples (variance Sigma_k) pooled with n new draws from
    N(mu_k, Sigma_k): Sigma_k k / (k + 1) + v_new / (k + 1) + k / (k + 1)^2 (mu_k - mean_new)^2, whose expectation
    is Sigma_k (k / (k + 1) + (n - 1) / (n (k + 1)) + k / (n (k + 1)^2)) = Sigma_k (1 - 1 / (n (k + 1)^2)).
    0.9728 at n = 20, t = 10.
    """
    return float(np.prod([1.0 - 1.0 / (n * k * k) for k in range(2, generation + 1)]))


def log_variance_drift(n: int) -> float:
    """E[ln Sigma_t - ln Sigma_{t-1}] = psi((n - 1) / 2) - ln(n / 2) under replace: n Sigma_t / Sigma_{t-1} is
    chi-square with n - 1 degrees of freedom, and E ln chi2_k = psi(k / 2) + ln 2 (the log-variance drifts down
    even though the variance's own expectation only shrinks by (n - 1) / n)."""
    return float(digamma((n - 1) / 2.0) - math.log(n / 2.0))


def fresh_mean_error(variance: float, n_real: int, n_synthetic: int, generation: int,
                     synthetic_variance: float | None = None) -> float:
    """E (mu_t - mu)^2 of a mean refitted each generation on n_r NEW real samples (variance sigma^2) and the n_s
    samples of the previous fit (variance ``synthetic_variance``, default sigma^2), pooled with equal per-sample
    weight w = n_s / (n_r + n_s) on the synthetic ones (He, Xu and Cheng 2025, "Golden ratio weighting prevents model
    collapse"):

    V_1 = sigma^2 / n_r (real data alone), V_t = (1 - w)^2 sigma^2 / n_r + w^2 (V_{t-1} + sigma_s^2 / n_s),
    stationary V = ((1 - w)^2 / n_r + w^2 / n_s) sigma^2 / (1 - w^2): 2/3 sigma^2 / n at n_r = n_s = n.
    """
    synthetic_variance = variance if synthetic_variance is None else synthetic_variance
    w = n_synthetic / (n_real + n_synthetic)
    error = variance / n_real
    for _ in range(2, generation + 1):
        error = (1 - w) ** 2 * variance / n_real + w * w * (error + synthetic_variance / n_synthetic)
    return error


def fresh_stationary_error(variance: float, n_real: int, n_synthetic: int) -> float:
    """The limit of ``fresh_mean_error``: ((1 - w)^2 / n_r + w^2 / n_s) sigma^2 / (1 - w^2)."""
    w = n_synthetic / (n_real + n_synthetic)
    return ((1 - w) ** 2 / n_real + w * w / n_synthetic) * variance / (1 - w * w)
