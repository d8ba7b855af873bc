"""common/smoke_settings.py: which trainer settings make a run a smoke test."""

from __future__ import annotations

import pytest

from common.smoke_settings import smoke_settings

# the trainer section of a config.yaml that `cli.py fit` saves for a full run
FULL = {"fast_dev_run": False, "limit_train_batches": None, "limit_val_batches": None, "limit_test_batches": None,
        "limit_predict_batches": None, "overfit_batches": 0.0, "max_steps": -1, "max_time": None, "devices": None}


def test_a_full_run_has_no_smoke_setting():
    assert smoke_settings(FULL) == []
    assert smoke_settings({**FULL, "limit_train_batches": 1.0, "overfit_batches": 0}) == []  # the whole data
    assert smoke_settings(None) == [] and smoke_settings({}) == []  # older configs without a trainer section


@pytest.mark.parametrize(("key", "value"), [
    ("fast_dev_run", True), ("fast_dev_run", 5), ("limit_train_batches", 0.1), ("limit_val_batches", 0.5),
    ("limit_test_batches", 10), ("limit_predict_batches", 0.25), ("overfit_batches", 2), ("max_steps", 100),
    ("max_time", "00:00:10:00"),
    ("limit_train_batches", 1),  # an int counts batches: one batch, not the whole data
])
def test_each_smoke_setting_is_named_with_its_value(key, value):
    assert smoke_settings({**FULL, key: value}) == [f"trainer.{key}={value}"]
