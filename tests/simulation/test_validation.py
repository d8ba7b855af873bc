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


def test_loop_classifier_lr_replaces_every_classifiers_lr_and_must_be_positive(tmp_path):
    from simulation.config import ClassifierConfig, LoopConfig
    from simulation.loop import with_loop_lr
    from simulation.validation import _loop_problems

    classifiers = [ClassifierConfig("lenet", lr=1e-3), ClassifierConfig("vgg19", lr=1e-4)]
    assert [c.lr for c in with_loop_lr(classifiers, LoopConfig(classifier_lr=0.1))] == [0.1, 0.1]
    assert [c.lr for c in with_loop_lr(classifiers, LoopConfig())] == [1e-3, 1e-4]
    bad = context(tmp_path, [])
    bad.loop = LoopConfig(classifier_lr=0.0)
    with pytest.raises(ConfigError, match="loop.classifier_lr must be > 0"):
        _loop_problems(bad)
