"""How often percentile-bootstrap intervals over seeds cover a true value, measured where the truth is known (the
analytic sandbox): split a quantity's seeds into consecutive groups of ``group_size`` (as a 3-seed experiment would
be), take the 95% bootstrap interval of the amplification factor A_t = mean B_{t+1} / mean B_t of every group
(``reporting.amplification.bootstrap_amplification``, what the report used before its t intervals), and count the
intervals that contain the true A_t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reporting.amplification import bootstrap_amplification


@dataclass(frozen=True)
class Coverage:
    covered: int
    intervals: int
    group_size: int

    @property
    def rate(self) -> float:
        return self.covered / self.intervals if self.intervals else float("nan")

    def text(self) -> str:
        return (f"{100 * self.rate:.0f}% of {self.intervals} intervals ({self.intervals // max(self.group_size, 1)} "
                f"... groups of {self.group_size} seeds)")


def interval_coverage(values: np.ndarray, true_ratio: np.ndarray | float, group_size: int = 3,
                      n_resamples: int = 2000) -> Coverage:
    """``values`` (seeds, generations) of a positive quantity B_t; ``true_ratio`` the true A_t (one per transition,
    or one for all). Seeds beyond the last whole group are left out."""
    values = np.asarray(values, dtype=float)
    truth = np.broadcast_to(np.asarray(true_ratio, dtype=float), (values.shape[1] - 1,))
    covered = intervals = 0
    for start in range(0, values.shape[0] - group_size + 1, group_size):
        ci = bootstrap_amplification(values[start:start + group_size], n_resamples=n_resamples, seed=start).a_ci
        usable = np.isfinite(ci).all(1)
        covered += int(((ci[:, 0] <= truth) & (truth <= ci[:, 1]))[usable].sum())
        intervals += int(usable.sum())
    return Coverage(covered, intervals, group_size)
