"""Work that must reach the producer before the worker commits its source offsets.

At-least-once rests on one order: whatever a processed message caused is handed to the producer
before that message's offset is committed (Faust flushes the producer, then commits). An agent
that holds some of its output back to send it together later (`streams.incident_feed`) breaks
that order unless it hands over what it holds first: it registers a flush here, and the
worker's consumer (`workers.consumer.Consumer`) runs every registered flush before each commit.
A flush that raises stops that commit, so the messages are read again.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable

import faust

Flush = Callable[[], Awaitable[None]]

_flushes: weakref.WeakKeyDictionary[faust.App, list[Flush]] = weakref.WeakKeyDictionary()


def before_commit(app: faust.App, flush: Flush) -> None:
    """Run `flush` before every commit of `app`'s consumer."""
    _flushes.setdefault(app, []).append(flush)


async def flush_before_commit(app: faust.App) -> None:
    """Every flush registered for `app`, in order (the consumer calls this as it commits)."""
    for flush in _flushes.get(app, ()):
        await flush()
