"""The analytic sandbox's world: low-dimensional points per class drawn from a Gaussian mixture whose components are
the subgroups (e.g. 90% majority, 10% minority in every class), so every statistic of the loop has a known answer.

Every fact of this world lives here: its classes and subgroups, the component means, their common spread, the
subgroup shares, the exact (class, subgroup) counts of each split, the true covariance of each class (what a fitted
Gaussian's variance is measured against) and the oracle that reads the subgroup of any point (the most probable
component of its class under the true mixture: the sandbox's counterpart of Colorized MNIST's stroke colour).

Splits are drawn with exact (class, subgroup) counts (the training set holds round(share * n_train_per_class) points
of each subgroup of each class, the test set ``n_test_per_subgroup`` of each cell, subgroup-balanced like the image
datasets' test sets), so the real minority share of a class is known exactly: the Wright-Fisher drift of the
generated minority share starts from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from common.errors import ConfigError
from common.seeds import stage_seed

#: two classes whose minority lies near the class boundary, above its majority (a linear classifier trained on 90/10
#: data places the boundary for the majorities, so the minorities are classified worse), 8.5 spreads away from its own
#: class's majority (the subgroup of a point is read without error, and EM finds both modes)
DEFAULT_MEANS = (((-2.0, 0.0), (-0.5, 4.0)), ((2.0, 0.0), (0.5, 4.0)))


@dataclass(frozen=True)
class PointSplit:
    """A split of points held in memory: ``points`` float64 (N, d), ``labels`` and ``groups`` int64 (N,).

    Not a ``LabelledSplit``: points are not images, and nothing of the image path reads them."""

    points: torch.Tensor
    labels: torch.Tensor
    groups: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.points[index], self.labels[index], self.groups[index]


class GaussianMixtureWorld:
    """The analytic sandbox's world of points: class c's points come from sum_g w_g N(mu_{c,g}, spread^2 I), subgroup
    g is mixture component g. Not an image ``RealDataSource`` and without a dataset card: points never reach the image
    loop, and the sandbox reads this world's facts from the object itself.

    Args:
        means: (classes, subgroups, dim) component means.
        subgroup_shares: (subgroups,) mixture weights, the same in every class (e.g. [0.9, 0.1]).
        spread: the standard deviation of every component along every axis.
        n_train_per_class: real training points per class (split by the shares exactly).
        n_test_per_subgroup: test points per (class, subgroup) cell (a subgroup-balanced test set).

    The splits' seed is the run's (``splits(seed)``).
    """

    #: the ``dataset`` of its result rows; the subgroup of a point is read from the point and its class
    #: (``subgroups_of``, the sandbox's oracle for u_t)
    name = "gaussian_mixture"

    def __init__(self, means=DEFAULT_MEANS, subgroup_shares=(0.9, 0.1), spread: float = 0.5,
                 n_train_per_class: int = 200, n_test_per_subgroup: int = 500) -> None:
        self.means = np.asarray(means, dtype=float)
        self.subgroup_shares = np.asarray(subgroup_shares, dtype=float)
        self.spread = float(spread)
        self.n_train_per_class = int(n_train_per_class)
        self.n_test_per_subgroup = int(n_test_per_subgroup)
        self.validate()

    # ------------------------------------------------------------------------------------------------ facts
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_groups(self) -> int:
        return len(self.group_names)

    @property
    def class_names(self) -> list[str]:
        return [f"class_{c}" for c in range(self.means.shape[0])]

    @property
    def group_names(self) -> list[str]:
        if self.means.shape[1] == 2:
            return ["majority", "minority"]
        return [f"component_{g}" for g in range(self.means.shape[1])]

    @property
    def dim(self) -> int:
        return int(self.means.shape[2])

    @property
    def minority(self) -> int:
        """The subgroup with the smallest share (the last one on ties)."""
        shares = self.subgroup_shares
        return int(len(shares) - 1 - np.argmin(shares[::-1]))

    def train_counts(self) -> np.ndarray:
        """(classes, subgroups) exact training counts: the shares of ``n_train_per_class``, rounded, summing to it."""
        per_class = np.floor(self.subgroup_shares * self.n_train_per_class).astype(int)
        remainder = self.n_train_per_class - int(per_class.sum())
        order = np.argsort(-(self.subgroup_shares * self.n_train_per_class - per_class), kind="stable")
        per_class[order[:remainder]] += 1
        return np.tile(per_class, (self.num_classes, 1))

    def real_minority_share(self) -> float:
        """The minority's exact share of every class's real training points."""
        return float(self.train_counts()[0, self.minority] / self.n_train_per_class)

    def first_fit_variance_ratio(self) -> float:
        """E[trace of the ML covariance of a class's real training points] / trace of its true covariance.

        The real set is stratified (exact subgroup counts), so only the components' own noise moves its mean:
        E = 1 - d spread^2 / (n trace Sigma), not the (n - 1) / n of an i.i.d. sample (the same for every class)."""
        n = self.n_train_per_class
        return float(1 - self.dim * self.spread ** 2 / (n * np.trace(self.class_covariance(0))))

    def class_covariance(self, label: int) -> np.ndarray:
        """The true (d, d) covariance of class ``label``'s points: what an ML Gaussian fit estimates."""
        w, mu = self.subgroup_shares, self.means[label]
        mean = w @ mu
        centred = mu - mean
        between = (w[:, None, None] * centred[:, :, None] * centred[:, None, :]).sum(0)
        return self.spread ** 2 * np.eye(self.dim) + between

    def validate(self) -> None:
        if self.means.ndim != 3 or self.means.shape[0] < 2 or self.means.shape[1] < 1 or self.means.shape[2] < 1:
            raise ConfigError(f"world.means must be (classes >= 2, subgroups, dim) nested lists, got shape "
                              f"{list(self.means.shape)}")
        shares = self.subgroup_shares
        if shares.shape != (self.means.shape[1],) or (shares <= 0).any() or abs(shares.sum() - 1) > 1e-9:
            raise ConfigError(f"world.subgroup_shares must be {self.means.shape[1]} positive shares summing to 1 "
                              f"(one per component of world.means), got {shares.tolist()}")
        if not self.spread > 0:
            raise ConfigError(f"world.spread must be > 0, got {self.spread}")
        if self.n_train_per_class < 2 or self.n_test_per_subgroup < 1:
            raise ConfigError(f"world.n_train_per_class must be >= 2 and world.n_test_per_subgroup >= 1, got "
                              f"{self.n_train_per_class} and {self.n_test_per_subgroup}")

    # ------------------------------------------------------------------------------------------------ points
    def draw(self, counts: np.ndarray, rng: np.random.Generator) -> PointSplit:
        """Points with exactly ``counts[c, g]`` of each (class, subgroup) cell, in cell order."""
        labels = np.repeat(np.arange(counts.shape[0]), counts.sum(1))
        groups = np.concatenate([np.repeat(np.arange(counts.shape[1]), row) for row in counts])
        points = self.means[labels, groups] + self.spread * rng.standard_normal((len(labels), self.dim))
        return PointSplit(points=torch.from_numpy(points), labels=torch.from_numpy(labels).long(),
                          groups=torch.from_numpy(groups).long())

    def subgroups_of(self, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The oracle: the most probable component of each point's class under the true mixture."""
        diff = np.asarray(points)[:, None, :] - self.means[np.asarray(labels)]  # (N, G, d)
        log_post = np.log(self.subgroup_shares)[None] - 0.5 * (diff ** 2).sum(-1) / self.spread ** 2
        return log_post.argmax(1)

    def splits(self, seed: int) -> dict[str, PointSplit]:
        """The train and test splits of ``seed`` (each from its own stream; val is not used by the sandbox)."""
        train = self.draw(self.train_counts(), np.random.default_rng(stage_seed(seed, 0, "sandbox/train")))
        test_counts = np.full(self.means.shape[:2], self.n_test_per_subgroup)
        test = self.draw(test_counts, np.random.default_rng(stage_seed(seed, 0, "sandbox/test")))
        val = self.draw(test_counts, np.random.default_rng(stage_seed(seed, 0, "sandbox/val")))
        return {"train": train, "val": val, "test": test}
