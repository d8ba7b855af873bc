"""Equation (6) of the paper's section 5, fitted: A_t = c0 + c1 (1 - q_t) + c2 u_t, with intervals and a test
against the intercept-only model A_t = c0, so that the fit can say "no evidence".

c0 = (1 - gamma_M)(1 + delta_D), c1 = (1 - gamma_M) delta_Q, c2 = (1 - gamma_M) delta_U: gamma_M and delta_D only ever
appear through c0 (one model and one dataset per fit), so the fit reports the identifiable combinations c0, c1, c2
and the ratios c1/c0 = delta_Q / (1 + delta_D), c2/c0 = delta_U / (1 + delta_D).

One observation per transition t, not per (seed, transition): A_t is the ratio of seed means
sum_s B_{s,t+1} / sum_s B_{s,t}, and its covariates the B_{s,t}-weighted seed means of (1 - q) and u. Under
equation (6) with independent multiplicative noise, that A_t is exactly a B-weighted mean of the seeds' A_{s,t}, so
its expectation is c0 + c1 (weighted 1 - q) + c2 (weighted u): the fit is unbiased. Per-seed ratios would not be
(E[B] E[1/B] = 1 + CV^2 inflates c0 out of pure noise), and treating every (seed, transition) as an independent
observation would count each seed's shared B_t twice. Intervals are ordinary least squares t intervals
(statsmodels, n - p degrees of freedom) and the comparison with A_t = c0 is the regression's F-test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import statsmodels.api as sm

CI_LEVEL = 0.95
ALPHA = 1.0 - CI_LEVEL
TERM_LABELS = {"1-q": "q_t", "u": "u_t"}


@dataclass
class Equation6Fit:
    """Least-squares fit of A_t = c0 + c1 (1 - q_t) + c2 u_t; c1/c2 are None when their term was dropped.
    ``intervals`` maps a term ("1", "1-q", "u") to its 95% t interval; ``f_pvalue`` is the F-test of the covariate
    terms against the intercept-only model (None without covariates or without residual degrees of freedom)."""

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
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    f_pvalue: float | None = None
    df_resid: int = 0
    #: why the fit has no intervals and no test although it has residual degrees of freedom (e.g. one seed)
    untested: str | None = None

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

    @property
    def evidence(self) -> bool | None:
        """True where the F-test rejects A_t = c0 at 5%, False where it does not, None where it cannot be run."""
        return None if self.f_pvalue is None else self.f_pvalue < ALPHA

    def evidence_text(self) -> str:
        """The fit's conclusion in words, e.g. ``no evidence that q_t / u_t explain A_t (F-test against A_t = c0:
        p = 0.41; q_t interval contains 0, u_t interval contains 0)``."""
        covariates = [t for t in self.terms if t != "1"]
        labels = " / ".join(TERM_LABELS[t] for t in covariates)
        if not covariates:
            return "no covariate term could be fitted: A_t = c0 only"
        if self.untested:
            return f"not tested: {self.untested}"
        if self.f_pvalue is None:
            return (f"cannot test whether {labels} explain A_t: {self.n_obs} transitions for {len(self.terms)} terms "
                    "leave no residual degrees of freedom")
        each = "; ".join(f"{TERM_LABELS[t]} interval {'contains' if _contains_zero(self.intervals[t]) else 'excludes'}"
                         " 0" for t in covariates)
        if self.evidence:
            return f"{labels} explain A_t beyond a constant (F-test against A_t = c0: p = {self.f_pvalue:.3g}; {each})"
        return f"no evidence that {labels} explain A_t (F-test against A_t = c0: p = {self.f_pvalue:.3g}; {each})"


def _contains_zero(interval: tuple[float, float]) -> bool:
    return not (interval[0] > 0 or interval[1] < 0)


def fit_equation6(a: Sequence[float], one_minus_q: Sequence[float | None] | None,
                  u: Sequence[float | None] | None, untested: str | None = None) -> Equation6Fit:
    """Ordinary least squares of A_t on [1, (1 - q_t), u_t] (statsmodels OLS), one observation per transition;
    ``untested`` says why no intervals and no F-test are given (the point fit is still shown).

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
    terms = ["1", *columns]
    rank = int(np.linalg.matrix_rank(design))
    if rank < design.shape[1]:
        notes.append(f"rank-deficient design ({n} observations, {design.shape[1]} terms, rank {rank}): "
                     "covariate constants not identifiable; intercept-only fit shown")
        design, terms, rank = design[:, :1], ["1"], 1
    if n == design.shape[1] and n > 1:
        notes.append(f"as many observations as terms ({n}): the fit passes through every point (no residual degrees "
                     "of freedom), so its constants and RMSE say nothing; run more generations")
    result = sm.OLS(a, design).fit()
    coef = np.asarray(result.params)
    fitted = design @ coef
    residuals = a - fitted
    df_resid = n - design.shape[1]
    intervals: dict[str, tuple[float, float]] = {}
    f_pvalue = None
    if df_resid > 0 and untested is None:
        bounds = np.asarray(result.conf_int(alpha=ALPHA))
        intervals = {term: (float(low), float(high)) for term, (low, high) in zip(terms, bounds)}
        if len(terms) > 1:
            restriction = np.eye(len(terms))[1:]  # every covariate coefficient = 0: the intercept-only model
            f_pvalue = float(result.f_test(restriction).pvalue)
    values = dict(zip(terms, coef.tolist()))
    return Equation6Fit(c0=values["1"], c1=values.get("1-q"), c2=values.get("u"), n_obs=n, rank=rank,
                        rmse=float(np.sqrt(np.mean(residuals ** 2))), terms=terms, fitted=fitted,
                        residuals=residuals, notes=notes, intervals=intervals,
                        f_pvalue=f_pvalue if f_pvalue is None or math.isfinite(f_pvalue) else None,
                        df_resid=df_resid, untested=untested)
