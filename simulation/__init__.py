"""The outer self-consuming loop: orchestration, run directory state, seeding, validation."""

from common.errors import ConfigError

__all__ = ["ConfigError"]
