"""The outer self-consuming loop: orchestration, run directory state, seeding, validation."""

from simulation.errors import ConfigError

__all__ = ["ConfigError"]
