"""Trainer settings that make a run a smoke test rather than a result: each stage sees only part of its data or
stops after a number of steps or seconds, so its numbers are not those of the configured experiment.

``cli.py fit`` refuses ``trainer.fast_dev_run`` and warns about the others; the report reads them back from a run's
``config.yaml`` and refuses to aggregate such a run, and the sweep refuses to start one.
"""

from __future__ import annotations

#: trainer key -> the values that mean "the whole experiment" (a limit given as an int counts batches: 1 is one batch)
FULL_RUN_VALUES = {"fast_dev_run": (False, 0, None), "limit_train_batches": (None, 1.0),
                   "limit_val_batches": (None, 1.0), "limit_test_batches": (None, 1.0),
                   "limit_predict_batches": (None, 1.0), "overfit_batches": (None, 0, 0.0),
                   "max_steps": (None, -1), "max_time": (None,)}


def smoke_settings(trainer: dict | None) -> list[str]:
    """``trainer.KEY=VALUE`` for every smoke setting in a run's trainer section (empty for a full run)."""
    trainer = trainer or {}
    found = []
    for key, full in FULL_RUN_VALUES.items():
        value = trainer.get(key)
        if not any(value is v or (type(value) is type(v) and value == v) for v in full):
            found.append(f"trainer.{key}={value}")
    return found
