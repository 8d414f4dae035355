"""Intake: `tickets.inbound` -> `tickets.accepted` | `tickets.dlq`,
de-duplicated on the ticket's home partition whatever partition the producer picked.

This shell only moves bytes: `ticketstream.intake` decides. De-duplication keeps per-ticket
fingerprints in the ticket's value of the `tickets` table (`TicketState.seen`: one table write per
event for intake and the ticket together), so every event of a ticket must be judged on one
partition: its *home*, `home_partition` (murmur2 of the ticket id, the partitioner of the
worker's own producer and of Java, aiokafka and kafka-python clients). librdkafka clients (kcat,
confluent-kafka, Go, .NET) hash keys with CRC32 by default and put a ticket elsewhere, possibly
on another worker.

The ticket agent (streams/tickets.py) reads `tickets.inbound` and `tickets.keyed` and hands
each message to `Intake`: one agent per ticket partition, so an accepted lifecycle event is
applied to its ticket in the same step instead of a round trip through `tickets.accepted` (which
stays the audit history for the archive). `Intake.inbound` validates each message once (a
rejection becomes a dead letter). A valid event already on its home partition is de-duplicated in
place (the fast path: every event from a murmur2 producer); any other is forwarded in canonical
form to `tickets.keyed`, onto its home partition, with its inbound coordinates in a header, and
`Intake.rekeyed` runs the same `decide` there without validating again. Both `tickets.inbound`
and `tickets.keyed` have the table's partition count, so Faust's assignor gives partition p of
both (and of the table's changelog) to one worker, and a table write goes to changelog
partition p either way (Faust writes to the source event's partition). If `tickets.inbound` has
another partition count than `tickets.keyed` (or it is not known yet), nothing is decided in
place: every event takes the second hop.

The agent runs with concurrency 1 (per-ticket order; it writes the table, ARCHITECTURE
pitfall 2). `ticketstream_intake_processing_seconds` is observed once per inbound message, when
intake is done with it (for a forwarded event after the second hop, with both hops' time), so
its count is the number of inbound messages finished. Outputs go through
`streams.emit.Emitter` (the app's producer directly; see there why).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faust

from ticketstream import intake as core
from ticketstream.schemas.deadletter import Reason, ReasonCode, Source
from ticketstream.settings import Settings
from ticketstream.streams import metrics
from ticketstream.streams.deadletters import DeadLetters, header_of, source_of
from ticketstream.streams.emit import Emitter, PartitionCounts, home_partition
from ticketstream.tickets.state import TicketState
from ticketstream.topology import ACCEPTED, INBOUND, KEYED

MAX_SEEN_PER_TICKET = 256
"""Event fingerprints remembered per ticket; a ticket has a dozen events in its life, so this
only bounds a misbehaving producer that invents endless ids for one ticket."""

ORIGIN_HEADER = "ts-origin"
"""Header of a `tickets.keyed` record: `partition:offset:timestamp_ms:seconds` of its inbound
message and the first hop's time on it, so a dead letter of the second hop points at the input
(kept 7 days; `tickets.keyed` only 1) and the processing time covers both hops."""


def raw_topic(app: faust.App, *names: str) -> Any:
    return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


def origin_header(source: Source, seconds: float) -> list[tuple[str, bytes]]:
    ts = "" if source.timestamp_ms is None else str(source.timestamp_ms)
    return [(ORIGIN_HEADER, f"{source.partition}:{source.offset}:{ts}:{seconds:.6f}".encode())]


def origin_of(event: Any, inbound: str) -> tuple[Source, float]:
    """The inbound source of a `tickets.keyed` event and the first hop's seconds on it, from its
    header; the keyed record's own coordinates when the header is missing."""
    own = source_of(event)
    value = header_of(event, ORIGIN_HEADER)
    if value is None:
        return own, 0.0
    partition, offset, ts, seconds = value.decode().split(":")
    source = Source(
        topic=inbound, partition=int(partition), offset=int(offset), timestamp_ms=int(ts) if ts else None, key=own.key
    )
    return source, float(seconds)


@dataclass(slots=True)
class Decided:
    """What intake decided about one valid event on its ticket's home partition."""

    item: core.Checked
    state: TicketState
    """The ticket's state, loaded for the decision; its `seen` holds the fingerprints."""
    forwarded: bool
    """Accepted (new, or the very message accepted before, read again): sent to `tickets.accepted`."""
    remembered: bool
    """A new fingerprint went into `state.seen`: the state must be saved."""


class Intake:
    """Intake's decisions for the ticket agent, which reads `tickets.inbound` and `tickets.keyed`
    (streams/tickets.py): one agent per ticket partition, so an accepted lifecycle event is
    applied to its ticket in the same step, not after a round trip through `tickets.accepted`,
    and the fingerprints live in the ticket's own table value (`TicketState.seen`)."""

    def __init__(self, app: faust.App, settings: Settings, dead_letters: DeadLetters) -> None:
        self.app = app
        self.dead_letters = dead_letters
        self.inbound_topic, self.keyed_topic = settings.topic(INBOUND), settings.topic(KEYED)
        self.keyed = Emitter(app, self.keyed_topic)
        self.accepted = Emitter(app, settings.topic(ACCEPTED))
        self._counts: PartitionCounts | None = None

    def partition_count(self, topic: str) -> int | None:
        """How many partitions `topic` has, from the worker's consumer's cluster metadata (None when
        unknown), remembered while that metadata stays the same (`PartitionCounts`: asked twice per
        event). Not Faust's `consumer.topic_partitions`: aiokafka fills the snapshot behind it only
        on the group's leader, so it answers None on every other worker."""
        consumer = getattr(getattr(self.app.consumer, "_thread", None), "_consumer", None)
        if consumer is None:
            return None
        counts = self._counts
        if counts is None or counts.cluster is not consumer._client.cluster:
            counts = self._counts = PartitionCounts(consumer._client.cluster)
        return counts(topic)

    async def forward(self, item: core.Checked) -> None:
        await self.accepted.send(item.ticket_id.encode(), item.body)

    async def decide(
        self, item: core.Checked, read_at: str, source: Callable[[], Source], state: TicketState
    ) -> Decided:
        """De-duplicate one valid event against its ticket's fingerprints and forward it: the one
        decision of both paths, always run while reading the ticket's home partition. `read_at`
        names the message being read (`core.read_at`), so a redelivery of the very message
        accepted before is forwarded again rather than dropped as a duplicate."""
        fp = core.fingerprint_of(item.event_id, item.body)
        verdict = core.classify_repeat(state.seen, fp, read_at)
        if verdict == "redelivery":
            await self.forward(item)
            metrics.INTAKE_REDELIVERED.inc()
            return Decided(item, state, forwarded=True, remembered=False)
        if verdict == "duplicate":
            metrics.INTAKE_DUPLICATES.inc()
            return Decided(item, state, forwarded=False, remembered=False)
        if verdict == "conflict":
            reason = Reason(
                code=ReasonCode.CONFLICTING_DUPLICATE,
                message="an event with this event_id was accepted before with different content",
            )
            ids = {"event_id": item.event_id, "ticket_id": item.ticket_id, "type": item.type}
            await self.dead_letters.send(item.body, reason, source(), "intake", ids)
            return Decided(item, state, forwarded=False, remembered=False)
        state.seen[fp.event] = core.seen_entry(fp, read_at)
        if len(state.seen) > MAX_SEEN_PER_TICKET:
            state.seen.pop(next(iter(state.seen)))
        await self.forward(item)
        if item.customer_id is not None:
            metrics.child(metrics.COMPLAINTS, item.channel).inc()
        metrics.child(metrics.INTAKE_ACCEPTED, item.type).inc()
        return Decided(item, state, forwarded=True, remembered=True)

    async def inbound(self, event: Any, raw: bytes, load: Callable[[str], TicketState]) -> Decided | None:
        """A `tickets.inbound` message: validated once (a rejection becomes a dead letter), then
        decided in place on its home partition (its ticket's state from `load`) or re-keyed to
        `tickets.keyed` (None then, and for a rejection)."""
        started = time.perf_counter()
        forwarded = False
        try:
            key = event.key if isinstance(event.key, bytes) or event.key is None else bytes(event.key)
            try:
                item = core.checked(core.parse_event(raw, key))
            except core.Rejected as rejected:
                await self.dead_letters.send(raw, rejected.reason, source_of(event), "intake", rejected.parsed)
                return None
            ticket_key = item.ticket_id.encode()  # == key: parse_event checked it
            partitions = self.partition_count(self.keyed_topic)
            home = None if partitions is None else home_partition(ticket_key, partitions)
            if event.message.partition == home and self.partition_count(self.inbound_topic) == partitions:
                read_at = core.read_at("i", event.message.partition, event.message.offset)
                return await self.decide(item, read_at, lambda: source_of(event), load(item.ticket_id))
            seconds = time.perf_counter() - started
            await self.keyed.send(ticket_key, item.body, home, origin_header(source_of(event), seconds))
            metrics.INTAKE_REKEYED.inc()
            forwarded = True
            return None
        finally:
            if not forwarded:  # a forwarded event is timed and counted when its second hop is done
                metrics.INTAKE_SECONDS.observe(time.perf_counter() - started)

    async def rekeyed(self, event: Any, raw: bytes, load: Callable[[str], TicketState]) -> Decided:
        """A `tickets.keyed` message (intake's own canonical form: parsed, not validated again),
        decided on its home partition."""
        started = time.perf_counter()
        source, first_hop = origin_of(event, self.inbound_topic)
        try:
            read_at = core.read_at("k", event.message.partition, event.message.offset)
            item = core.from_canonical(raw)
            return await self.decide(item, read_at, lambda: source, load(item.ticket_id))
        finally:
            metrics.INTAKE_SECONDS.observe(first_hop + time.perf_counter() - started)
