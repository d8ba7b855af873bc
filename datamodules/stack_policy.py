"""How past synthetic data is kept and drawn: the data regimes the model-collapse literature compares.

* ``fifo`` (the paper's): the last K = ``data.regime.window`` generations; an epoch draws
  min(round(p / (1 - p) N_real), stack size) of them, each once.
* ``replace``: only the newest generation (K = 1, whatever the window), drawn like ``fifo``.
* ``accumulate``: every generation ever generated (the stack grows without bound, on disk; the reader keeps memory
  bounded); an epoch uses all of it, each sample once, whatever p (the training set grows every generation).
* ``subsample``: every generation kept on disk; an epoch draws the fixed budget round(p / (1 - p) N_real) uniformly
  from all of them (accumulate-then-subsample: the share p holds, older generations are seen less often).
* ``fresh``: the newest generation only, beside ``data.regime.fresh_real_per_generation`` NEW real samples every
  generation, dealt from the real training split held as a pool (He, Xu and Cheng's "fresh data" loop;
  ``datamodules/fresh_real.py``).

p = 1 (no real data once the stack holds a block: the model-collapse literature's pure replacement) is defined where
an epoch is the whole window of generations: ``fifo`` and ``replace``, without oversampling.

One class per regime, one code path: a policy only answers how many generations the stack keeps and how many
synthetic samples an epoch draws, and refuses the settings it cannot honour; the mixer draws the samples uniformly
from whatever the stack holds. A new regime is one subclass with its own ``name``: defining it registers it, and
``data.regime.policy: <name>`` selects it.
"""

from __future__ import annotations

from typing import ClassVar

from common.errors import ConfigError
from datamodules.mixing import synthetic_per_epoch


class StackPolicy:
    """A data regime's rule. Subclasses set ``name`` and override what differs from the FIFO window."""

    name: ClassVar[str]
    _registry: ClassVar[dict[str, type[StackPolicy]]] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        StackPolicy._registry[cls.name] = cls

    @classmethod
    def named(cls, name: str) -> StackPolicy:
        """The policy ``data.regime.policy`` names; a ConfigError listing the known ones otherwise."""
        if name not in cls._registry:
            raise ConfigError(f"data.regime.policy must be one of {policy_names()}, got {name!r}")
        return cls._registry[name]()

    def kept_generations(self, window: int) -> int | None:
        """How many generations the stack keeps (None: all), given ``data.regime.window``."""
        return window

    def synthetic_per_epoch(self, n_real: int, share: float, stack_size: int, oversample: bool) -> int:
        """Synthetic samples an epoch draws from a stack of ``stack_size`` (target share p = ``share``)."""
        return synthetic_per_epoch(n_real, share, stack_size, oversample)

    #: every generation trains on new real samples from a held pool (``fresh``)
    draws_fresh_real: ClassVar[bool] = False
    #: p = 1 is defined (an epoch is the whole window of generations, no real sample)
    allows_all_synthetic: ClassVar[bool] = False

    def check(self, capacity: int | None) -> None:
        """ConfigError for a setting of the regime section this policy cannot honour (``capacity``: the sample
        budget, which evicts oldest generations)."""

    def all_synthetic_problem(self, share: float, oversample: bool) -> str | None:
        """Why p = ``share`` cannot be used with this regime (None: it can): p in [0, 1), or p = 1 where the policy
        allows it, without oversampling."""
        if 0.0 <= share < 1.0:
            return None
        if share == 1.0 and self.allows_all_synthetic and not oversample:
            return None
        allowed = tuple(name for name in policy_names() if StackPolicy._registry[name].allows_all_synthetic)
        return (f"data.regime.synthetic_share (p) must be in [0, 1), or 1 with data.regime.policy in {allowed} and "
                f"data.regime.oversample false (no real data once the stack holds a block), got {share} with policy "
                f"{self.name!r}" + (" and oversample" if oversample else "")
                + ": p is the target synthetic share of every epoch, e.g. 0.5 for half real, half generated")

    def real_per_epoch(self, n_real: int, share: float, stack_size: int) -> int:
        """Real samples an epoch uses: all of them, except at p = 1 once the stack holds a block (none)."""
        return 0 if share >= 1.0 and stack_size > 0 else n_real

    @property
    def keeps_every_generation(self) -> bool:
        return self.kept_generations(1) is None

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Fifo(StackPolicy):
    """The paper's queue: the last ``window`` generations, the share p drawn from them."""

    name = "fifo"
    allows_all_synthetic = True


class Replace(StackPolicy):
    """The newest generation only, the share p drawn from it."""

    name = "replace"
    allows_all_synthetic = True

    def kept_generations(self, window: int) -> int | None:
        return 1


class _KeepsEverything(StackPolicy):
    """Every generation stays on disk: a sample budget that evicts old generations contradicts the regime."""

    name = "_keeps_everything"

    def kept_generations(self, window: int) -> int | None:
        return None

    def check(self, capacity: int | None) -> None:
        if capacity is not None:
            raise ConfigError(f"data.regime.capacity evicts old generations, but data.regime.policy {self.name!r} "
                              "keeps every generation: unset data.regime.capacity (or choose policy fifo)")


class Accumulate(_KeepsEverything):
    """Every generation, every sample once per epoch whatever p: the training set grows every generation."""

    name = "accumulate"

    def synthetic_per_epoch(self, n_real: int, share: float, stack_size: int, oversample: bool) -> int:
        return stack_size


class Subsample(_KeepsEverything):
    """Every generation kept; an epoch draws the p budget uniformly from all of them."""

    name = "subsample"


class Fresh(StackPolicy):
    """The newest generation only, beside new real samples every generation (``fresh_real_per_generation``)."""

    name = "fresh"
    draws_fresh_real = True

    def kept_generations(self, window: int) -> int | None:
        return 1


def policy_names() -> tuple[str, ...]:
    """The registered regimes' names, in definition order (the private base left out)."""
    return tuple(name for name in StackPolicy._registry if not name.startswith("_"))
