"""How past synthetic data is kept and drawn: the data regimes the model-collapse literature compares.

* ``fifo`` (the paper's): the last K = ``loop.stack_generations`` generations; an epoch draws
  min(round(p / (1 - p) N_real), stack size) of them, each once.
* ``replace``: only the newest generation (K = 1), drawn like ``fifo``.
* ``accumulate``: every generation ever generated (the stack grows without bound, on disk; the reader keeps memory
  bounded); an epoch uses all of it, each sample once, whatever p (the training set grows every generation).
* ``subsample``: every generation kept on disk; an epoch draws the fixed budget round(p / (1 - p) N_real) uniformly
  from all of them (accumulate-then-subsample: the share p holds, older generations are seen less often).

One code path: a policy only decides how many generations the stack keeps and how many synthetic samples an epoch
draws; the mixer draws them uniformly from whatever the stack holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import ConfigError
from datamodules.mixing import synthetic_per_epoch

STACK_POLICIES = ("fifo", "replace", "accumulate", "subsample", "fresh")
#: the regimes where p = 1 is defined (an epoch is the whole window of generations, no real sample)
ALL_SYNTHETIC_POLICIES = ("fifo", "replace")


@dataclass(frozen=True)
class StackPolicy:
    name: str = "fifo"

    def __post_init__(self) -> None:
        if self.name not in STACK_POLICIES:
            raise ConfigError(f"data.stack_policy must be one of {STACK_POLICIES}, got {self.name!r}")

    @property
    def draws_fresh_real(self) -> bool:
        """Every generation trains on new real samples from a held pool (``fresh``)."""
        return self.name == "fresh"

    def all_synthetic_problem(self, share: float, oversample: bool) -> str | None:
        """Why p = ``share`` cannot be used with this regime (None: it can). p in [0, 1); p = 1 only where
        ``ALL_SYNTHETIC_POLICIES`` defines it, without oversampling."""
        if 0.0 <= share < 1.0:
            return None
        if share == 1.0 and self.name in ALL_SYNTHETIC_POLICIES and not oversample:
            return None
        return (f"data.synthetic_share (p) must be in [0, 1), or 1 with data.stack_policy {ALL_SYNTHETIC_POLICIES} "
                f"and data.oversample false (no real data once the stack holds a block), got {share} with "
                f"stack_policy {self.name!r}" + (" and oversample" if oversample else "")
                + ": p is the synthetic share of every epoch, e.g. 0.5 for half real, half generated")

    def real_per_epoch(self, n_real: int, share: float, stack_size: int) -> int:
        """Real samples an epoch uses: all of them, except at p = 1 once the stack holds a block (none)."""
        return 0 if share >= 1.0 and stack_size > 0 else n_real

    @property
    def keeps_every_generation(self) -> bool:
        return self.name in ("accumulate", "subsample")

    def kept_generations(self, window: int) -> int | None:
        """How many generations the stack keeps (None: all) given ``loop.stack_generations``."""
        if self.name == "fifo":
            return window
        if self.name in ("replace", "fresh"):
            return 1
        return None

    def synthetic_per_epoch(self, n_real: int, share: float, stack_size: int, oversample: bool) -> int:
        """Synthetic samples an epoch draws from a stack of ``stack_size``."""
        if self.name == "accumulate":
            return stack_size
        return synthetic_per_epoch(n_real, share, stack_size, oversample)
