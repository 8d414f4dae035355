"""The worker's garbage-collector settings (workers/gctuning.py)."""

from __future__ import annotations

import gc
import weakref

from ticketstream.workers import gctuning


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_tune_collects_then_freezes_startup_objects_and_collects_less_often() -> None:
    before, frozen_before = gc.get_threshold(), gc.get_freeze_count()
    try:
        garbage = _Node()
        dropped = weakref.ref(garbage)
        del garbage  # start-up garbage: collected before the freeze, not frozen with it
        survivor = [object()]  # a long-lived start-up object
        gctuning.tune()
        assert dropped() is None
        assert gc.isenabled()
        assert gc.get_threshold() == (gctuning.YOUNG_THRESHOLD, gctuning.OLDER_THRESHOLD, gctuning.OLDER_THRESHOLD)
        assert gc.get_freeze_count() > frozen_before
        assert not any(obj is survivor for obj in gc.get_objects())  # frozen: no collection walks it
        later = _Node()
        found = weakref.ref(later)
        del later
        gc.collect()
        assert found() is None  # a cycle made after tuning is still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
