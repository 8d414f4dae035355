"""Python's cyclic garbage collector set for a long-running worker (垃圾回收調校).

A worker allocates a few hundred short-lived objects per message (decoded values, clock marks,
records, futures) beside hundreds of thousands of long-lived ones (modules, the triage model,
pydantic's schemas, Faust's and aiokafka's machinery, the in-memory tables, the SLA caches). With
CPython's default thresholds (700, 10, 10) the collector ran young collections hundreds of times
a minute and, as the long-lived objects grew, full collections that walk all of them: measured on
`bench_pipeline.py --complaints 12000 --complaints-only` (fresh tickets, empty tables at start),
2.1-2.9 s of a worker's ≈ 21 s of CPU went to collections, nine full ones of 150-240 ms each (a
pause that also delays every SLA timer by as much). Collection only finds reference cycles;
everything else is freed by reference counting the moment it is dropped.

What `tune` does, once, before the worker starts: collect, then `gc.freeze()` the objects that
exist (what start-up built lives as long as the process; frozen objects are never walked again,
and are still freed by reference counting, but a reference cycle among them is never collected),
and raise the thresholds (`YOUNG_THRESHOLD`, `OLDER_THRESHOLD`). The same runs then spent ≈ 0.4 s
in collections, young ones only. Not frozen: what the worker builds after start-up, such as
tables recovered from their changelogs after a restart; full collections walk those, but at
these thresholds they are rare. Written for CPython 3.11 (the image's; 3.12 and 3.13 read the
thresholds the same way).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
"""Net growth in objects the collector tracks (allocations minus deallocations) before a young
collection, instead of 700: the objects of a message mostly die with it and cancel out, so young
collections come a few times a second at full load rather than hundreds of times."""

OLDER_THRESHOLD = 20
"""Young collections per middle one, and middle collections before a full one is considered
(CPython also waits until the long-lived objects have grown by a quarter since the last)."""


def tune() -> None:
    """Freeze what start-up built and collect less often (see the module's docstring)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
