"""The dead-letter path shared by every agent: record, metric, a rate-limited log line, the topic."""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import faust

from ticketstream import intake as core
from ticketstream.schemas.deadletter import Reason, ReasonCode, Source
from ticketstream.settings import Settings
from ticketstream.streams import metrics
from ticketstream.streams.emit import Emitter
from ticketstream.topology import DLQ

log = logging.getLogger(__name__)


class LogBudget:
    """At most `per_minute` log lines a minute: a flood of bad input must not flood the log too
    (every dead letter is still counted in the metric and kept in the dead-letter topic)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.window = 0
        self.used = 0

    def allow(self) -> bool:
        window = int(time.monotonic() // 60)
        if window != self.window:
            self.window, self.used = window, 0
        self.used += 1
        return self.used <= self.per_minute


class DeadLetters:
    def __init__(self, app: faust.App, settings: Settings) -> None:
        self._topic = Emitter(app, settings.topic(DLQ))
        self._mask = settings.dlq_original == "masked"
        self._budget = LogBudget(per_minute=60)

    async def send(
        self,
        raw: bytes,
        reason: Reason,
        source: Source,
        stage: str,
        parsed: dict[str, Any] | None = None,
        part: int | None = None,
    ) -> None:
        """Dead-letter `raw` (`part`: its position in its message, when the message held several
        inputs: see `core.dead_letter`)."""
        record = core.dead_letter(raw, reason, source, stage=stage, parsed=parsed, mask_original=self._mask, part=part)
        metrics.DEADLETTERS.labels(stage=stage, reason=reason.code.value).inc()
        if self._budget.allow():
            log.warning("dead-lettered %s: %s: %s", record.id, reason.code.value, reason.message)
        await self._topic.send(record.id.encode(), record.model_dump_json().encode())


def source_of(event: Any) -> Source:
    """Where a Faust stream event came from, for its dead-letter record."""
    message = event.message
    key = event.key if isinstance(event.key, bytes) or event.key is None else bytes(event.key)
    return Source(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
        key=core.key_text(key),
    )


def header_of(event: Any, name: str) -> bytes | None:
    """The value of a stream event's header `name` (None when it has none); Faust gives headers
    as a list of pairs or as a mapping, depending on the path the message took."""
    headers = event.message.headers or ()
    for key, value in headers.items() if isinstance(headers, dict) else headers:
        if key == name:
            return bytes(value)
    return None


def raw_of(event: Any) -> bytes:
    """A stream event's value as the bytes that arrived."""
    return event.value if isinstance(event.value, bytes) else bytes(event.value or b"")


async def guarded(
    events: AsyncIterator[Any], dead_letters: DeadLetters, stage: str, handle: Callable[[Any, bytes], Awaitable[None]]
) -> None:
    """Every agent's loop: decode and handle each stream event with `handle(event, raw)`; whatever
    it raises becomes a `processing_error` dead letter of `stage` (counted, logged without the
    exception's text, which may quote personal data) and the stream goes on with the next message."""
    async for event in events:
        raw = raw_of(event)
        try:
            await handle(event, raw)
        except Exception as exc:  # noqa: BLE001 - one bad message must never stop the stream
            await failed(dead_letters, stage, event, raw, exc)


BATCH = 1000
"""Messages an agent that takes batches (`in_batches`) handles together at most."""

BATCH_SECONDS = 0.5
"""How long a batch waits to fill once the agent asks for it: about the delay batching adds to
what the agent decides (the breach counts' team-overload alert, an incident's detection)."""


async def in_batches(stream: Any, handle: Callable[[list[Any]], Awaitable[None]]) -> None:
    """The loop of an agent that takes its messages a batch at a time (`take_events`: up to
    `BATCH` or `BATCH_SECONDS`), so that what it keeps per key is read and written once per batch:
    `guarded`'s counterpart. `handle` dead-letters each message it cannot handle itself
    (`failed_each`), so that a dead letter names the message at fault. Faust acknowledges a
    batch's messages when the agent asks for the next batch, after `handle` is done with them (at-least-once as per
    message); only if dead-lettering itself fails (the producer is broken) does the agent stop, and
    then Faust acknowledges the batch as it closes the stream, up to `BATCH` messages where per
    message it was one."""
    async for events in stream.take_events(BATCH, within=BATCH_SECONDS):
        await handle(events)


async def failed_each(dead_letters: DeadLetters, stage: str, events: list[Any], exc: Exception) -> None:
    """`failed` for each of `events` (the messages of a batch that `exc` stopped)."""
    for event in events:
        await failed(dead_letters, stage, event, raw_of(event), exc)


async def failed(
    dead_letters: DeadLetters, stage: str, event: Any, raw: bytes, exc: Exception, part: int | None = None
) -> None:
    """Dead-letter a message whose handling in `stage` raised `exc` (or its input number `part`):
    counted, logged without the exception's text (which may quote personal data), sent with a
    `processing_error` reason."""
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    log.error(
        "%s failed on %s: %s at %s",
        stage,
        source_of(event).model_dump(),
        type(exc).__name__,
        f"{where.filename}:{where.lineno}" if where else "?",
    )
    code = ReasonCode.INVALID_JSON if isinstance(exc, json.JSONDecodeError) else ReasonCode.PROCESSING_ERROR
    await dead_letters.send(
        raw,
        Reason(code=code, message=f"unexpected {type(exc).__name__} in {stage}"),
        source_of(event),
        stage,
        part=part,
    )
