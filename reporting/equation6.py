"""Equation (6) of the paper's section 5, fitted: A_t = c0 + c1 (1 - q_t) + c2 u_t by least squares.

c0 = (1 - gamma_M)(1 + delta_D), c1 = (1 - gamma_M) delta_Q, c2 = (1 - gamma_M) delta_U: gamma_M and delta_D only ever
appear through c0 (one model and one dataset per fit), so the fit reports the identifiable combinations c0, c1, c2
and the ratios c1/c0 = delta_Q / (1 + delta_D), c2/c0 = delta_U / (1 + delta_D).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Equation6Fit:
    """Least-squares fit of A_t = c0 + c1 (1 - q_t) + c2 u_t; c1/c2 are None when their term was dropped."""

    c0: float | None
    c1: float | None
    c2: float | None
    n_obs: int
    rank: int
    rmse: float | None
    terms: list[str]
    fitted: np.ndarray
    residuals: np.ndarray
    notes: list[str] = field(default_factory=list)

    def predict(self, one_minus_q: float | None, u: float | None) -> float | None:
        if self.c0 is None:
            return None
        value = self.c0
        for coef, x in ((self.c1, one_minus_q), (self.c2, u)):
            if coef is not None:
                if x is None:
                    return None
                value += coef * x
        return value

    @property
    def c1_over_c0(self) -> float | None:
        return self.c1 / self.c0 if self.c1 is not None and self.c0 else None

    @property
    def c2_over_c0(self) -> float | None:
        return self.c2 / self.c0 if self.c2 is not None and self.c0 else None


def fit_equation6(a: Sequence[float], one_minus_q: Sequence[float | None] | None,
                  u: Sequence[float | None] | None) -> Equation6Fit:
    """Linear regression of A_t on [1, (1 - q_t), u_t] with numpy.linalg.lstsq.

    A term is dropped (and the note says why) when its covariate is missing for any observation, or when it does
    not vary across observations (then it is indistinguishable from the intercept).
    """
    a = np.asarray(a, dtype=float)
    n = a.shape[0]
    notes: list[str] = []
    columns: dict[str, np.ndarray] = {}
    for name, values, label in (("1-q", one_minus_q, "q_t"), ("u", u, "u_t")):
        if values is None or any(v is None for v in values) or len(values) != n:
            notes.append(f"{label} term dropped: {label} unavailable" + ("" if values is None or all(
                v is None for v in values) else " for some transitions"))
            continue
        x = np.asarray(values, dtype=float)
        if n > 1 and np.ptp(x) < 1e-12:
            notes.append(f"{label} term dropped: {label} is constant across transitions (not separable from c0)")
            continue
        columns[name] = x
    if n == 0:
        return Equation6Fit(None, None, None, 0, 0, None, [], np.zeros(0), np.zeros(0),
                            [*notes, "no transitions with a defined A_t"])
    design = np.column_stack([np.ones(n), *columns.values()])
    coef, _, rank, _ = np.linalg.lstsq(design, a, rcond=None)
    terms = ["1", *columns]
    if rank < design.shape[1]:
        notes.append(f"rank-deficient design ({n} observations, {design.shape[1]} terms, rank {rank}): "
                     "covariate constants not identifiable; intercept-only fit shown")
        design = design[:, :1]
        coef, _, rank, _ = np.linalg.lstsq(design, a, rcond=None)
        terms = ["1"]
        columns = {}
    if n == design.shape[1] and n > 1:
        notes.append(f"as many observations as terms ({n}): the fit passes through every point (no residual degrees "
                     "of freedom), so its constants and RMSE say nothing; run more seeds or generations")
    fitted = design @ coef
    residuals = a - fitted
    values = dict(zip(terms, coef.tolist()))
    return Equation6Fit(c0=values["1"], c1=values.get("1-q"), c2=values.get("u"), n_obs=n, rank=int(rank),
                        rmse=float(np.sqrt(np.mean(residuals ** 2))), terms=terms, fitted=fitted,
                        residuals=residuals, notes=notes)
