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

STACK_POLICIES = ("fifo", "replace", "accumulate", "subsample")


@dataclass(frozen=True)
class StackPolicy:
    name: str = "fifo"

    def __post_init__(self) -> None:
        if self.name not in STACK_POLICIES:
            raise ConfigError(f"data.stack_policy must be one of {STACK_POLICIES}, got {self.name!r}")

    @property
    def keeps_every_generation(self) -> bool:
        return self.name in ("accumulate", "subsample")

    def kept_generations(self, window: int) -> int | None:
        """How many generations the stack keeps (None: all) given ``loop.stack_generations``."""
        if self.name == "fifo":
            return window
        if self.name == "replace":
            return 1
        return None

    def synthetic_per_epoch(self, n_real: int, share: float, stack_size: int, oversample: bool) -> int:
        """Synthetic samples an epoch draws from a stack of ``stack_size``."""
        if self.name == "accumulate":
            return stack_size
        return synthetic_per_epoch(n_real, share, stack_size, oversample)
