"""Generators of the sandbox, fitted by maximum likelihood each generation: per class, one Gaussian (which cannot
represent a minority mode) or a K-component Gaussian mixture (fitted by EM), and their sampling.

A regime's ``generator`` names one of ``GENERATORS`` (``gaussian``, or ``{name: mixture, components: 3}`` with
arguments); ``build_generator`` turns that into the object whose ``fit`` the loop calls. A new generator is a class
registered with ``@register``: nothing else in the sandbox lists them.

A fitted model is per class: weights (L, K), means (L, K, d), covariances (L, K, d, d); the single Gaussian is K = 1.
Sampling draws each sample's component from the fitted weights (so a class's minority count is binomial around its
fitted share: the Wright-Fisher step), then a point from that component.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from common.errors import ConfigError

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

    def total_covariances(self) -> np.ndarray:
        """(L, d, d): the covariance of each class's samples (of the whole mixture for K > 1)."""
        w, mu, cov = self.weights, self.means, self.covariances
        centred = mu - np.einsum("lk,lkd->ld", w, mu)[:, None, :]
        return np.einsum("lk,lkij->lij", w, cov + centred[..., :, None] * centred[..., None, :])

    def total_covariance(self, label: int) -> np.ndarray:
        """The covariance of class ``label``'s samples."""
        return self.total_covariances()[label]

    def sample(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One point per entry of ``labels``: its component drawn from the class's weights, then the point (all
        classes at once: a world of many classes costs one draw, not one per class)."""
        labels = np.asarray(labels)
        cumulative = np.cumsum(self.weights[labels], axis=1)  # (N, K)
        components = (rng.random(len(labels))[:, None] * cumulative[:, -1:] >= cumulative[:, :-1]).sum(1)
        noise = rng.standard_normal((len(labels), self.means.shape[2]))
        chol = np.linalg.cholesky(self.covariances)  # (L, K, d, d)
        return self.means[labels, components] + np.einsum("nij,nj->ni", chol[labels, components], noise)


def fit_gaussian(points: np.ndarray, labels: np.ndarray, num_classes: int) -> FittedModel:
    """Per class, the ML Gaussian (mean, covariance divided by n, not n - 1): E[fitted variance] = (n - 1) / n x the
    data's (Shumailov et al.'s collapse). Every class at once, from per-class sums."""
    d = points.shape[1]

    def per_class_sum(values: np.ndarray) -> np.ndarray:
        return np.bincount(labels, weights=values, minlength=num_classes)

    counts = per_class_sum(np.ones(len(labels)))
    means = np.stack([per_class_sum(points[:, i]) for i in range(d)], 1) / counts[:, None]
    centred = points - means[labels]
    covs = np.stack([np.stack([per_class_sum(centred[:, i] * centred[:, j]) for j in range(d)], 1)
                     for i in range(d)], 1) / counts[:, None, None] + REG_COVAR * np.eye(d)
    return FittedModel(np.ones((num_classes, 1)), means[:, None], covs[:, None])


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


class SandboxGenerator(ABC):
    """A generator refitted from scratch on each generation's training data, then sampled for the next block.

    ``measures`` names the block quantities whose closed forms its runs check (``sandbox.theory.known_answers``)."""

    name: ClassVar[str]
    measures: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def fit(self, points: np.ndarray, labels: np.ndarray, num_classes: int, rng: np.random.Generator) -> FittedModel:
        """The per-class model fitted to ``points``."""

    def to_config(self) -> dict:
        """What a run's config.yaml records: the name and the arguments (``build_generator`` reads it back)."""
        arguments = dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}
        return {"name": self.name, **arguments}


#: name -> generator class, filled by ``@register``
GENERATORS: dict[str, type[SandboxGenerator]] = {}


def register(cls: type[SandboxGenerator]) -> type[SandboxGenerator]:
    GENERATORS[cls.name] = cls
    return cls


@register
@dataclass(frozen=True)
class RefittedGaussian(SandboxGenerator):
    """Per class one ML Gaussian: its variance collapses under replace (Shumailov et al. 2024)."""

    name: ClassVar[str] = "gaussian"
    measures: ClassVar[tuple[str, ...]] = ("fitted_variance_ratio",)

    def fit(self, points, labels, num_classes, rng) -> FittedModel:
        return fit_gaussian(points, labels, num_classes)


@register
@dataclass(frozen=True)
class RefittedMixture(SandboxGenerator):
    """Per class a ``components``-component Gaussian mixture by EM: it recovers the minority's share, which then drifts
    like Wright-Fisher."""

    name: ClassVar[str] = "mixture"
    measures: ClassVar[tuple[str, ...]] = ("minority_share", "minority_share_variance")
    components: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.components, bool) or not isinstance(self.components, int) or self.components < 1:
            raise ConfigError(f"generator.components must be an integer >= 1, got {self.components!r}")

    def fit(self, points, labels, num_classes, rng) -> FittedModel:
        return fit_mixture(points, labels, num_classes, self.components, rng)


def build_generator(spec: str | dict | SandboxGenerator) -> SandboxGenerator:
    """``gaussian`` or ``{name: mixture, components: 3}`` -> the generator; one ConfigError that lists the choices."""
    if isinstance(spec, SandboxGenerator):
        return spec
    arguments = dict(spec) if isinstance(spec, dict) else {"name": spec}
    name = arguments.pop("name", None)
    if name not in GENERATORS:
        raise ConfigError(f"generator must be one of {sorted(GENERATORS)} (or a mapping {{name: ..., <arguments>}}), "
                          f"got {spec!r}")
    cls = GENERATORS[name]
    fields = [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []
    unknown = sorted(set(arguments) - set(fields))
    if unknown:
        raise ConfigError(f"generator {name} has no arguments {unknown}: it takes {fields}")
    return cls(**arguments)
