"""Python's cyclic garbage collector set for a long-running worker (垃圾回收調校).

A worker allocates a few hundred short-lived objects per message (decoded values, clock marks,
records, futures) beside hundreds of thousands of long-lived ones (modules, the triage model,
pydantic's schemas, Faust's and aiokafka's machinery, the in-memory tables, the SLA caches). With
CPython's default thresholds (700, 10, 10) the collector runs a young collection every 700 net
allocations and, as the long-lived objects grow, full collections that walk all of them: measured
on `bench_pipeline.py --complaints 12000 --complaints-only`, 2.1-2.9 s of a worker's ≈ 21 s of
CPU went to collections, nine full ones of 150-240 ms each (a pause that also delays every SLA
timer by as much). Collection only finds reference cycles; everything else is freed by reference
counting the moment it is dropped, so collecting rarely costs memory only for cyclic garbage.

What `tune` does, once, before the worker starts: collect, then `gc.freeze()` the objects that
exist (what start-up built lives as long as the process; frozen objects are never walked again,
and are still freed by reference counting), and collect the young generation every
`YOUNG_THRESHOLD` allocations instead of 700, the older ones after `OLDER_THRESHOLD` young and
middle collections. The same runs then spent ≈ 0.4 s in collections (young ones only).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
"""Net allocations between young collections: a few milliseconds of messages; a young collection
then walks at most this many objects (≈ 30 ms), a few times a second at full load."""

OLDER_THRESHOLD = 20
"""Young collections per middle one, and middle collections before a full one is considered
(CPython also waits until the long-lived objects have grown by a quarter since the last)."""


def tune() -> None:
    """Freeze what start-up built and collect less often (see the module's docstring)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
