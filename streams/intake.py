"""Intake agent: `tickets.inbound` -> `tickets.accepted` (+ `tickets.by_customer`) | `tickets.dlq`.

The agent only moves bytes: `ticketstream.intake` decides. It runs with concurrency 1 because
it writes the `intake_seen` table (ARCHITECTURE pitfall 2), and it catches every exception per
message, because Faust acks a message whose handler raised (pitfall 1): an unexpected failure
becomes a `processing_error` dead letter and the stream goes on.

A new complaint is also re-keyed by customer onto `tickets.by_customer` here, where it is parsed
already, instead of in a separate hop (repeat detection needs the customer's partition).
Outputs go through `streams.emit.Emitter` (the app's producer directly; see there why).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from schemas.deadletter import Reason, ReasonCode
from schemas.events import EventType
from streams import metrics
from streams.deadletters import DeadLetters, source_of
from streams.emit import Emitter
from streams.tables import table
from ticketstream import intake as core
from ticketstream.settings import Settings
from ticketstream.topology import ACCEPTED, BY_CUSTOMER, INBOUND, TABLE_INTAKE_SEEN

log = logging.getLogger(__name__)

MAX_SEEN_PER_TICKET = 256
"""Event fingerprints remembered per ticket; a ticket has a dozen events in its life, so this
only bounds a misbehaving producer that invents endless ids for one ticket."""


def raw_topic(app: faust.App, *names: str) -> Any:
    return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


def register(app: faust.App, settings: Settings, dead_letters: DeadLetters) -> None:
    inbound = raw_topic(app, settings.topic(INBOUND))
    accepted = Emitter(app, settings.topic(ACCEPTED))
    by_customer = Emitter(app, settings.topic(BY_CUSTOMER))
    seen = table(app, settings, TABLE_INTAKE_SEEN, dict, "event fingerprints per ticket, for de-duplication")

    async def forward(parsed_event: Any, key: bytes | None, body: bytes) -> None:
        await accepted.send(key, body)
        if parsed_event.type is EventType.COMPLAINT_RECEIVED:
            await by_customer.send(parsed_event.complaint.customer.id.encode(), body)

    @app.agent(inbound, concurrency=1, name="intake")
    async def intake(stream: Any) -> None:
        async for event in stream.events():
            raw = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
            key = event.key if isinstance(event.key, bytes) or event.key is None else bytes(event.key)
            started = time.perf_counter()
            try:
                parsed_event = core.parse_event(raw, key)
                body = core.canonical(parsed_event)
                fp = core.fingerprint(parsed_event, body)
                ticket_seen = seen[parsed_event.ticket_id]
                at = f"{event.message.partition}:{event.message.offset}"
                verdict = core.classify_repeat(ticket_seen, fp, at)
                if verdict == "redelivery":
                    await forward(parsed_event, key, body)
                    metrics.INTAKE_REDELIVERED.inc()
                elif verdict == "duplicate":
                    metrics.INTAKE_DUPLICATES.inc()
                elif verdict == "conflict":
                    await dead_letters.send(
                        raw,
                        Reason(
                            code=ReasonCode.CONFLICTING_DUPLICATE,
                            message="an event with this event_id was accepted before with different content",
                        ),
                        source_of(event),
                        "intake",
                        {
                            "event_id": parsed_event.event_id,
                            "ticket_id": parsed_event.ticket_id,
                            "type": parsed_event.type.value,
                        },
                    )
                else:
                    updated = dict(ticket_seen)
                    updated[fp.event] = core.seen_entry(fp, at)
                    if len(updated) > MAX_SEEN_PER_TICKET:
                        updated.pop(next(iter(updated)))
                    seen[parsed_event.ticket_id] = updated
                    await forward(parsed_event, key, body)
                    if parsed_event.type is EventType.COMPLAINT_RECEIVED:
                        metrics.COMPLAINTS.labels(channel=parsed_event.complaint.channel.value).inc()
                    metrics.INTAKE_ACCEPTED.labels(type=parsed_event.type.value).inc()
            except core.Rejected as rejected:
                await dead_letters.send(raw, rejected.reason, source_of(event), "intake", rejected.parsed)
            except Exception as exc:  # noqa: BLE001 - one bad message must never stop the stream
                # Not log.exception: the exception's text and traceback may quote personal data.
                log.error("intake failed on %s: %s", source_of(event).model_dump(), type(exc).__name__)
                await dead_letters.send(
                    raw,
                    Reason(code=ReasonCode.PROCESSING_ERROR, message=f"unexpected {type(exc).__name__} in intake"),
                    source_of(event),
                    "intake",
                )
            finally:
                metrics.INTAKE_SECONDS.observe(time.perf_counter() - started)
