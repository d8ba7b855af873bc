"""The sandbox's classifier: multinomial logistic regression on the points with a weak L2 penalty (which keeps
separable data finite and the problem strictly convex), fitted to convergence by Newton's method: deterministic, no
epochs, no early stopping, about a millisecond a fit. Class 0 is the reference class (its logit is 0)."""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

L2_PENALTY = 1e-3
NEWTON_STEPS = 50
TOLERANCE = 1e-10


def _with_bias(points: np.ndarray) -> np.ndarray:
    return np.hstack([points, np.ones((len(points), 1))])


def _logits(features: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return np.hstack([np.zeros((len(features), 1)), features @ weights])


def _objective(features: np.ndarray, onehot: np.ndarray, weights: np.ndarray) -> float:
    logits = _logits(features, weights)
    top = logits.max(1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(1))
    return float((log_norm - (onehot * logits).sum(1)).mean() + 0.5 * L2_PENALTY * (weights ** 2).sum())


def fit_logistic(points: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(d + 1, L - 1) weights of classes 1..L-1 (the last row is the bias) minimising the penalised mean
    cross-entropy, by damped Newton steps."""
    features = _with_bias(points)
    n, f = features.shape
    k = num_classes - 1
    onehot = np.eye(num_classes)[labels]
    weights = np.zeros((f, k))
    value = _objective(features, onehot, weights)
    for _ in range(NEWTON_STEPS):
        prob = softmax(_logits(features, weights), axis=1)[:, 1:]  # (n, k)
        gradient = features.T @ (prob - onehot[:, 1:]) / n + L2_PENALTY * weights
        # Hessian over (feature, class) pairs: sum_i x_i x_i^T (diag(p_i) - p_i p_i^T) / n
        cross = np.einsum("na,nb->nab", prob, prob)
        curvature = (np.einsum("na,ab->nab", prob, np.eye(k)) - cross)  # (n, k, k)
        hessian = np.einsum("ni,nj,nab->iajb", features, features, curvature).reshape(f * k, f * k) / n
        hessian += L2_PENALTY * np.eye(f * k)
        step = np.linalg.solve(hessian, gradient.reshape(f * k)).reshape(f, k)
        scale = 1.0
        while scale > 1e-6:  # backtracking: Newton from zero can overshoot on well-separated data
            candidate = weights - scale * step
            new_value = _objective(features, onehot, candidate)
            if new_value <= value:
                break
            scale /= 2
        weights, done = candidate, value - new_value < TOLERANCE
        value = new_value
        if done:
            break
    return weights


def predict(weights: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The most probable class of each point."""
    return _logits(_with_bias(points), weights).argmax(1)
