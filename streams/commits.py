"""Work that must reach the producer before the worker commits its source offsets.

At-least-once rests on one order: whatever a processed message caused is handed to the producer
before that message's offset is committed (Faust flushes the producer, then commits). An agent
that holds some of its output back to send it together later (`streams.incident_feed`) breaks
that order unless it hands over what it holds first: it registers a flush here, and the
worker's consumer (`workers.consumer.Consumer`) runs every registered flush before each commit.
A flush that raises stops that commit; Faust then stops the worker, as for any failure of its
producer, and the uncommitted messages are read again.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable

import faust

Flush = Callable[[], Awaitable[None]]

_flushes: weakref.WeakKeyDictionary[faust.App, list[weakref.WeakMethod[Flush]]] = weakref.WeakKeyDictionary()
"""Per app, its flushes: methods of objects the app's agents hold, held weakly themselves (a
method holds its object, which holds the app, which would then never be freed)."""


def before_commit(app: faust.App, flush: Flush) -> None:
    """Run `flush` (a bound method: its object must live as long as the app) before every commit
    of `app`'s consumer."""
    _flushes.setdefault(app, []).append(weakref.WeakMethod(flush))  # type: ignore[arg-type]


async def flush_before_commit(app: faust.App) -> None:
    """Every flush registered for `app`, in order (the consumer calls this as it commits)."""
    for ref in _flushes.get(app, ()):
        flush = ref()
        if flush is not None:
            await flush()
