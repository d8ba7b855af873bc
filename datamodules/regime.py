"""The data regime: the one config section (``data.regime``) that says how past synthetic data is kept and mixed.

Everything that decides what a training epoch holds lives here: which regime (``policy``), how many generations it
keeps (``window``), the target synthetic share p, an optional sample budget and oversampling. The realised share of
an epoch (reported as ``realised_synthetic_share``) is below p while the stack is smaller than the target.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import ConfigError
from datamodules.stack_policy import StackPolicy


@dataclass(frozen=True)
class DataRegime:
    """How past synthetic data is kept and drawn (docs/loop.md, Data regimes).

    Args:
        policy: the regime (datamodules/stack_policy.py): ``fifo`` (the paper's: the last ``window`` generations),
            ``replace`` (the newest only), ``accumulate`` (every generation, each sample once per epoch whatever p),
            ``subsample`` (every generation, an epoch draws the p budget uniformly from all of them).
        window: K, the generations a ``fifo`` stack keeps (the paper's queue capacity D/S = 3): exactly the last K
            pushed blocks, whatever the filters kept of each; the policies that keep one or every generation ignore it.
        synthetic_share: p in [0, 1), the target synthetic share of every training epoch. An epoch uses
            min(round(p / (1 - p) * N_real), stack size) stack samples, each once, so the share is reached once the
            stack is large enough and until then the whole stack is used. p = 1 (``fifo`` and ``replace`` only, no
            oversampling): no real data once the stack holds a block, an epoch is the whole stack.
        capacity: an optional sample budget of a ``fifo`` or ``replace`` stack on top of the generations it keeps:
            the oldest whole generations are evicted while the stack would hold more samples (null: no budget).
        oversample: always use round(p / (1 - p) * N_real) synthetic samples per epoch, drawing with replacement
            while the stack is smaller (a fixed share from generation 1, at the cost of repeated images).
        fresh_real_per_generation: with ``policy: fresh``, the real samples of every generation's dataset
            (stratified by class, never reused); the pool must hold them for generations 0..loop.generations.
    """

    policy: str = "fifo"
    window: int = 3
    synthetic_share: float = 0.5
    capacity: int | None = None
    oversample: bool = False
    fresh_real_per_generation: int | None = None

    @property
    def stack_policy(self) -> StackPolicy:
        """The regime's rule (a ConfigError naming the known regimes for an unknown ``policy``)."""
        return StackPolicy.named(self.policy)

    @property
    def kept_generations(self) -> int | None:
        """How many generations the stack keeps (None: every one)."""
        return self.stack_policy.kept_generations(self.window)

    def synthetic_per_epoch(self, n_real: int, stack_size: int) -> int:
        """Synthetic samples an epoch draws from a stack of ``stack_size``."""
        return self.stack_policy.synthetic_per_epoch(n_real, self.synthetic_share, stack_size, self.oversample)

    def validate(self) -> None:
        """One ConfigError for the first setting that is out of range, naming the key and the fix."""
        policy = self.stack_policy
        share_problem = policy.all_synthetic_problem(self.synthetic_share, self.oversample)
        if share_problem:
            raise ConfigError(share_problem)
        if policy.draws_fresh_real != (self.fresh_real_per_generation is not None):
            raise ConfigError(
                "data.regime.policy 'fresh' needs data.regime.fresh_real_per_generation (the new real samples of "
                "every generation), and only 'fresh' uses it: " + (
                    "set data.regime.fresh_real_per_generation" if policy.draws_fresh_real
                    else f"unset data.regime.fresh_real_per_generation or set data.regime.policy: fresh (got "
                         f"{self.policy!r})"))
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ConfigError(f"data.regime.window must be >= 1 (the number of generations the fifo stack keeps; "
                              f"the paper keeps 3), got {self.window}")
        if self.capacity is not None and self.capacity < 1:
            raise ConfigError(f"data.regime.capacity must be a positive number of samples or null, got "
                              f"{self.capacity}")
        policy.check(self.capacity)


#: the paper's regime (every default): a FIFO of the last 3 generations at p = 0.5
PAPER_REGIME = DataRegime()
