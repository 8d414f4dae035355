"""The worker's garbage-collector settings (workers/gctuning.py)."""

from __future__ import annotations

import gc

from ticketstream.workers import gctuning


def test_tune_freezes_startup_objects_and_collects_young_objects_less_often() -> None:
    before = gc.get_threshold()
    try:
        survivor = [object()]  # a long-lived start-up object
        gctuning.tune()
        assert gc.get_threshold() == (gctuning.YOUNG_THRESHOLD, gctuning.OLDER_THRESHOLD, gctuning.OLDER_THRESHOLD)
        assert gc.get_freeze_count() > 0
        assert not any(obj is survivor for obj in gc.get_objects())  # frozen: no collection walks it
        cycle: list[object] = []
        cycle.append(cycle)  # cyclic garbage made after tuning is still found
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
