"""Intake: `tickets.inbound` -> `tickets.accepted` (+ `tickets.by_customer`) | `tickets.dlq`,
de-duplicated on the ticket's home partition whatever partition the producer picked.

The agents only move bytes: `ticketstream.intake` decides. De-duplication keeps per-ticket
fingerprints in the `intake_seen` table, so every event of a ticket must be judged on one
partition: its *home*, `home_partition` (murmur2 of the ticket id, the partitioner of the
worker's own producer and of Java, aiokafka and kafka-python clients). librdkafka clients (kcat,
confluent-kafka, Go, .NET) hash keys with CRC32 by default and put a ticket elsewhere, possibly
on another worker.

Agent `intake` reads `tickets.inbound` and validates each message once (a rejection becomes a
dead letter). A valid event already on its home partition is de-duplicated in place (the fast
path: every event from a murmur2 producer); any other is forwarded in canonical form to
`tickets.keyed`, onto its home partition, with its inbound coordinates in a header. Agent
`dedupe` reads `tickets.keyed` and runs the same `decide` without validating again. Both
`tickets.inbound` and `tickets.keyed` have the table's partition count, so Faust's assignor gives
partition p of both (and of the table's changelog) to one worker, and a table write goes to
changelog partition p either way (Faust writes to the source event's partition). If
`tickets.inbound` has another partition count than `tickets.keyed` (or it is not known yet),
nothing is decided in place: every event takes the second hop.

Both agents run with concurrency 1 (per-ticket order; they write the table, ARCHITECTURE
pitfall 2); `decide`'s read-check-write of the table has no await inside, so the two agents
cannot interleave on one ticket. `ticketstream_intake_processing_seconds` is observed once per
inbound message, when intake is done with it (for a forwarded event in `dedupe`, with both hops'
time), so its count is the number of inbound messages finished. Outputs go through
`streams.emit.Emitter` (the app's producer directly; see there why).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import faust
from aiokafka.partitioner import murmur2

from ticketstream import intake as core
from ticketstream.schemas.deadletter import Reason, ReasonCode, Source
from ticketstream.settings import Settings
from ticketstream.streams import metrics
from ticketstream.streams.deadletters import DeadLetters, guarded, source_of
from ticketstream.streams.emit import Emitter
from ticketstream.streams.tables import table
from ticketstream.topology import ACCEPTED, BY_CUSTOMER, INBOUND, KEYED, TABLE_INTAKE_SEEN

MAX_SEEN_PER_TICKET = 256
"""Event fingerprints remembered per ticket; a ticket has a dozen events in its life, so this
only bounds a misbehaving producer that invents endless ids for one ticket."""

ORIGIN_HEADER = "ts-origin"
"""Header of a `tickets.keyed` record: `partition:offset:timestamp_ms:seconds` of its inbound
message and the first hop's time on it, so a dead letter of the second hop points at the input
(kept 7 days; `tickets.keyed` only 1) and the processing time covers both hops."""


def raw_topic(app: faust.App, *names: str) -> Any:
    return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


def home_partition(key: bytes, partitions: int) -> int:
    """The project's partitioner: the partition the worker's producer (aiokafka's default, the same
    murmur2 as Java's) gives `key`, where every ticket-keyed topic and table of the worker has it."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partition_count(app: faust.App, topic: str) -> int | None:
    """How many partitions `topic` has, from the worker's consumer's cluster metadata (None when
    unknown). Not Faust's `consumer.topic_partitions`: aiokafka fills the snapshot behind it only
    on the group's leader, so it answers None on every other worker."""
    consumer = getattr(getattr(app.consumer, "_thread", None), "_consumer", None)
    partitions = consumer.partitions_for_topic(topic) if consumer is not None else None
    return len(partitions) if partitions else None


def origin_header(source: Source, seconds: float) -> list[tuple[str, bytes]]:
    ts = "" if source.timestamp_ms is None else str(source.timestamp_ms)
    return [(ORIGIN_HEADER, f"{source.partition}:{source.offset}:{ts}:{seconds:.6f}".encode())]


def origin_of(event: Any, inbound: str) -> tuple[Source, float]:
    """The inbound source of a `tickets.keyed` event and the first hop's seconds on it, from its
    header; the keyed record's own coordinates when the header is missing."""
    headers = event.message.headers or ()
    for name, value in headers.items() if isinstance(headers, dict) else headers:
        if name == ORIGIN_HEADER:
            partition, offset, ts, seconds = bytes(value).decode().split(":")
            own = source_of(event)
            source = Source(
                topic=inbound,
                partition=int(partition),
                offset=int(offset),
                timestamp_ms=int(ts) if ts else None,
                key=own.key,
            )
            return source, float(seconds)
    return source_of(event), 0.0


def register(app: faust.App, settings: Settings, dead_letters: DeadLetters) -> None:
    inbound_name, keyed_name = settings.topic(INBOUND), settings.topic(KEYED)
    keyed = Emitter(app, keyed_name)
    accepted = Emitter(app, settings.topic(ACCEPTED))
    by_customer = Emitter(app, settings.topic(BY_CUSTOMER))
    seen = table(app, settings, TABLE_INTAKE_SEEN, dict, "event fingerprints per ticket, for de-duplication")

    async def forward(item: core.Checked) -> None:
        await accepted.send(item.ticket_id.encode(), item.body)
        if item.customer_id is not None:
            await by_customer.send(item.customer_id.encode(), item.body)

    async def decide(item: core.Checked, read_at: str, source: Callable[[], Source]) -> None:
        """De-duplicate one valid event and forward it: the one decision of both paths, always
        run while reading the ticket's home partition. No await between reading and writing the
        table row: the two agents cannot interleave on one ticket. `read_at` names the message
        being read (`core.read_at`), so a redelivery of the very message accepted before is
        forwarded again rather than dropped as a duplicate."""
        fp = core.fingerprint_of(item.event_id, item.body)
        ticket_seen = seen[item.ticket_id]
        verdict = core.classify_repeat(ticket_seen, fp, read_at)
        if verdict == "redelivery":
            await forward(item)
            metrics.INTAKE_REDELIVERED.inc()
        elif verdict == "duplicate":
            metrics.INTAKE_DUPLICATES.inc()
        elif verdict == "conflict":
            reason = Reason(
                code=ReasonCode.CONFLICTING_DUPLICATE,
                message="an event with this event_id was accepted before with different content",
            )
            ids = {"event_id": item.event_id, "ticket_id": item.ticket_id, "type": item.type}
            await dead_letters.send(item.body, reason, source(), "intake", ids)
        else:
            updated = dict(ticket_seen)
            updated[fp.event] = core.seen_entry(fp, read_at)
            if len(updated) > MAX_SEEN_PER_TICKET:
                updated.pop(next(iter(updated)))
            seen[item.ticket_id] = updated
            await forward(item)
            if item.customer_id is not None:
                metrics.COMPLAINTS.labels(channel=item.channel).inc()
            metrics.INTAKE_ACCEPTED.labels(type=item.type).inc()

    async def on_inbound(event: Any, raw: bytes) -> None:
        started = time.perf_counter()
        forwarded = False
        try:
            key = event.key if isinstance(event.key, bytes) or event.key is None else bytes(event.key)
            try:
                item = core.checked(core.parse_event(raw, key))
            except core.Rejected as rejected:
                await dead_letters.send(raw, rejected.reason, source_of(event), "intake", rejected.parsed)
                return
            ticket_key = item.ticket_id.encode()  # == key: parse_event checked it
            partitions = partition_count(app, keyed_name)
            home = None if partitions is None else home_partition(ticket_key, partitions)
            if event.message.partition == home and partition_count(app, inbound_name) == partitions:
                await decide(
                    item, core.read_at("i", event.message.partition, event.message.offset), lambda: source_of(event)
                )
            else:
                seconds = time.perf_counter() - started
                await keyed.send(ticket_key, item.body, home, origin_header(source_of(event), seconds))
                metrics.INTAKE_REKEYED.inc()
                forwarded = True
        finally:
            if not forwarded:  # a forwarded event is timed and counted when `dedupe` is done with it
                metrics.INTAKE_SECONDS.observe(time.perf_counter() - started)

    async def on_keyed(event: Any, raw: bytes) -> None:
        started = time.perf_counter()
        source, first_hop = origin_of(event, inbound_name)
        try:
            read_at = core.read_at("k", event.message.partition, event.message.offset)
            await decide(core.from_canonical(raw), read_at, lambda: source)
        finally:
            metrics.INTAKE_SECONDS.observe(first_hop + time.perf_counter() - started)

    @app.agent(raw_topic(app, inbound_name), concurrency=1, name="intake")
    async def intake(stream: Any) -> None:
        await guarded(stream.events(), dead_letters, "intake", on_inbound)

    @app.agent(raw_topic(app, keyed_name), concurrency=1, name="dedupe")
    async def dedupe(stream: Any) -> None:
        await guarded(stream.events(), dead_letters, "intake", on_keyed)
