"""Generators of the sandbox, fitted by maximum likelihood each generation: per class, one Gaussian (which cannot
represent a minority mode) or a K-component Gaussian mixture (fitted by EM), and their sampling.

A fitted model is per class: weights (L, K), means (L, K, d), covariances (L, K, d, d); the single Gaussian is K = 1.
Sampling draws each sample's component from the fitted weights (so a class's minority count is binomial around its
fitted share: the Wright-Fisher step), then a point from that component.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GENERATORS = ("gaussian", "mixture")
#: added to every fitted covariance's diagonal (as scikit-learn's ``reg_covar``): a component left with one point
#: keeps a positive-definite covariance
REG_COVAR = 1e-6
EM_ITERATIONS = 100
EM_TOLERANCE = 1e-8


@dataclass
class FittedModel:
    weights: np.ndarray  # (L, K)
    means: np.ndarray  # (L, K, d)
    covariances: np.ndarray  # (L, K, d, d)

    def total_covariance(self, label: int) -> np.ndarray:
        """The covariance of class ``label``'s samples (of the whole mixture for K > 1)."""
        w, mu, cov = self.weights[label], self.means[label], self.covariances[label]
        mean = w @ mu
        centred = mu - mean
        return (w[:, None, None] * (cov + centred[:, :, None] * centred[:, None, :])).sum(0)

    def sample(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One point per entry of ``labels``: its component drawn from the class's weights, then the point."""
        labels = np.asarray(labels)
        points = np.empty((len(labels), self.means.shape[2]))
        for c in np.unique(labels):
            where = np.flatnonzero(labels == c)
            components = rng.choice(self.weights.shape[1], size=len(where), p=self.weights[c])
            noise = rng.standard_normal((len(where), self.means.shape[2]))
            chol = np.linalg.cholesky(self.covariances[c])  # (K, d, d)
            points[where] = self.means[c, components] + np.einsum("nij,nj->ni", chol[components], noise)
        return points


def _ml_gaussian(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample mean and maximum-likelihood covariance (divided by n, not n - 1)."""
    mean = points.mean(0)
    centred = points - mean
    return mean, centred.T @ centred / len(points) + REG_COVAR * np.eye(points.shape[1])


def fit_gaussian(points: np.ndarray, labels: np.ndarray, num_classes: int) -> FittedModel:
    """Per class, the ML Gaussian: E[fitted variance] = (n - 1) / n x the data's (Shumailov et al.'s collapse)."""
    d = points.shape[1]
    weights, means, covs = np.ones((num_classes, 1)), np.zeros((num_classes, 1, d)), np.zeros((num_classes, 1, d, d))
    for c in range(num_classes):
        means[c, 0], covs[c, 0] = _ml_gaussian(points[labels == c])
    return FittedModel(weights, means, covs)


def _log_gauss(points: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """(N, K) log densities of every point under every component."""
    d = points.shape[1]
    chol = np.linalg.cholesky(covs)  # (K, d, d)
    diff = points[:, None, :] - means[None]  # (N, K, d)
    solved = np.linalg.solve(chol[None], diff[..., None])[..., 0]  # (N, K, d)
    log_det = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(-1)
    return -0.5 * ((solved ** 2).sum(-1) + log_det[None] + d * np.log(2 * np.pi))


def _em(points: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EM for a K-component full-covariance mixture, started from farthest-point seeds (the first one drawn at
    random): well-separated modes each get a component whatever their sizes."""
    n, d = points.shape
    k = min(k, n)
    centres = [points[rng.integers(n)]]
    for _ in range(1, k):
        distance = np.min([((points - c) ** 2).sum(1) for c in centres], axis=0)
        centres.append(points[int(distance.argmax())])
    nearest = np.argmin([((points - c) ** 2).sum(1) for c in centres], axis=0)
    resp = np.eye(k)[nearest]
    previous = -np.inf
    for _ in range(EM_ITERATIONS):
        counts = resp.sum(0) + 10 * np.finfo(float).eps
        weights = counts / n
        means = resp.T @ points / counts[:, None]
        diff = points[:, None, :] - means[None]
        covs = np.einsum("nk,nki,nkj->kij", resp, diff, diff) / counts[:, None, None] + REG_COVAR * np.eye(d)
        log_joint = _log_gauss(points, means, covs) + np.log(weights)[None]
        top = log_joint.max(1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(log_joint - top).sum(1))
        resp = np.exp(log_joint - log_norm[:, None])
        likelihood = float(log_norm.mean())
        if likelihood - previous < EM_TOLERANCE:
            break
        previous = likelihood
    return weights, means, covs


def fit_mixture(points: np.ndarray, labels: np.ndarray, num_classes: int, components: int,
                rng: np.random.Generator) -> FittedModel:
    """Per class, a ``components``-component Gaussian mixture by maximum likelihood (EM)."""
    d = points.shape[1]
    weights = np.zeros((num_classes, components))
    means = np.zeros((num_classes, components, d))
    covs = np.tile(np.eye(d), (num_classes, components, 1, 1))
    for c in range(num_classes):
        w, mu, cov = _em(points[labels == c], components, rng)
        weights[c, :len(w)], means[c, :len(w)], covs[c, :len(w)] = w, mu, cov
    return FittedModel(weights, means, covs)
