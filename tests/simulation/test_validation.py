"""The validation pass names what the configuration lacks before any work."""

import pytest

from common.errors import ConfigError
from filters import SubgroupBalanceFilter
from simulation.config import OracleConfig, QualityConfig
from simulation.validation import _filter_problems
from tests.simulation.test_stages import context


def test_the_subgroup_balance_needs_a_subgroup_oracle(tmp_path):
    without_oracle = context(tmp_path / "a", [SubgroupBalanceFilter()])
    with pytest.raises(ConfigError, match="set quality.oracle"):
        _filter_problems(without_oracle)
    with_oracle = context(tmp_path / "b", [SubgroupBalanceFilter()])
    with_oracle.quality = QualityConfig(oracle=OracleConfig())
    _filter_problems(with_oracle)  # a learned oracle reads the subgroups
