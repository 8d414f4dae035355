"""Intake agent: `tickets.inbound` -> `tickets.accepted` | `tickets.dlq`.

The agent only moves bytes: `ticketstream.intake` decides. It runs with concurrency 1 because
it writes the `intake_seen` table (ARCHITECTURE pitfall 2), and it catches every exception per
message, because Faust acks a message whose handler raised (pitfall 1): an unexpected failure
becomes a `processing_error` dead letter and the stream goes on.

Outputs go through `streams.emit.Emitter` (the app's producer directly; see there why).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from schemas.deadletter import Reason, ReasonCode, Source
from streams.emit import Emitter
from ticketstream import intake as core
from ticketstream.settings import Settings
from ticketstream.topology import ACCEPTED, DLQ, INBOUND, TABLE_INTAKE_SEEN
from workers import metrics

log = logging.getLogger(__name__)

MAX_SEEN_PER_TICKET = 256
"""Event fingerprints remembered per ticket; a ticket has a dozen events in its life, so this
only bounds a misbehaving producer that invents endless ids for one ticket."""


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


def raw_topic(app: faust.App, name: str) -> Any:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


def register(app: faust.App, settings: Settings) -> None:
    inbound = raw_topic(app, settings.topic(INBOUND))
    accepted = Emitter(app, settings.topic(ACCEPTED))
    dlq = Emitter(app, settings.topic(DLQ))
    # No value_type: plain JSON values (a value_type that is not a faust.Record breaks recovery).
    seen = app.Table(TABLE_INTAKE_SEEN, default=dict, partitions=settings.partitions,
                     key_type=str, help="event fingerprints per ticket, for de-duplication")
    mask_original = settings.dlq_original == "masked"
    dlq_log = LogBudget(per_minute=60)

    async def dead_letter(raw: bytes, reason: Reason, source: Source, parsed: dict[str, Any] | None) -> None:
        record = core.dead_letter(raw, reason, source, parsed=parsed, mask_original=mask_original)
        metrics.DEADLETTERS.labels(stage="intake", reason=reason.code.value).inc()
        if dlq_log.allow():
            log.warning("dead-lettered %s: %s: %s", record.id, reason.code.value, reason.message)
        await dlq.send(record.id.encode(), record.model_dump_json().encode())

    @app.agent(inbound, concurrency=1, name="intake")
    async def intake(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            raw = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
            key = event.key if isinstance(event.key, bytes) or event.key is None else bytes(event.key)
            started = time.perf_counter()
            source = Source(topic=message.topic, partition=message.partition, offset=message.offset,
                            timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
                            key=core.key_text(key))
            try:
                parsed_event = core.parse_event(raw, key)
                fp = core.fingerprint(parsed_event)
                ticket_seen = seen[parsed_event.ticket_id]
                verdict = core.classify_repeat(ticket_seen, fp)
                if verdict == "duplicate":
                    metrics.INTAKE_DUPLICATES.inc()
                elif verdict == "conflict":
                    await dead_letter(raw, Reason(
                        code=ReasonCode.CONFLICTING_DUPLICATE,
                        message="an event with this event_id was accepted before with different content",
                    ), source, {"event_id": parsed_event.event_id, "ticket_id": parsed_event.ticket_id,
                                "type": parsed_event.type.value})
                else:
                    updated = dict(ticket_seen)
                    updated[fp.event] = fp.content
                    if len(updated) > MAX_SEEN_PER_TICKET:
                        updated.pop(next(iter(updated)))
                    seen[parsed_event.ticket_id] = updated
                    await accepted.send(key, parsed_event.model_dump_json(exclude_none=True).encode())
                    metrics.INTAKE_ACCEPTED.labels(type=parsed_event.type.value).inc()
            except core.Rejected as rejected:
                await dead_letter(raw, rejected.reason, source, rejected.parsed)
            except Exception as exc:  # noqa: BLE001 - one bad message must never stop the stream
                log.exception("intake failed on %s:%s:%s", message.topic, message.partition, message.offset)
                await dead_letter(raw, Reason(code=ReasonCode.PROCESSING_ERROR,
                                              message=f"unexpected {type(exc).__name__} in intake"), source, None)
            finally:
                metrics.INTAKE_SECONDS.observe(time.perf_counter() - started)
