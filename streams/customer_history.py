"""Every customer's history on every worker: `customers.history` -> `CustomerHistories`.

A complaint is triaged where its ticket is owned (streams/tickets.py), and one customer's tickets
are spread over every partition, so repeat detection (二次投訴) needs the customer's complaints
from every worker. Each worker sends the history entry of every complaint it triages to
`customers.history` (key: the customer id; value: `[ticket_id, category, epoch seconds]`) and
reads *all* partitions of that topic, with a consumer of its own outside the consumer group, into
its copy (`ticketstream.triage.history`: merged per ticket, so its own entries read back, and
entries read twice after a restart, change nothing).

Why not a Faust `GlobalTable`: in faust-streaming a global table is kept up to date by the
standby machinery, and a worker that holds only active partitions of it stops reading the
others' writes (faust-streaming issue #283, open); a table keyed by customer would also have to
be written from the customer's partition, which is what the `tickets.by_customer` hop did.

At start the copy reads the topic from its beginning to the end offsets it finds then, and no
complaint is triaged before (`wait_ready`): a restarted worker counts every complaint the
cluster has sent in the window. The topic's retention (35 days) covers the repeat window (30);
the copy keeps each customer's entries within the window of their newest, and drops every hour
the customers with nothing in the window any more.

The entry is produced in the same step as the ticket's state and before the step's input offset
is committed (the producer is flushed before every commit), so an entry is lost only if the
complaint is read and triaged again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from ticketstream.settings import Settings
from ticketstream.streams import metrics
from ticketstream.streams.emit import Emitter
from ticketstream.topology import CUSTOMER_HISTORY
from ticketstream.triage.engine import HistoryEntry
from ticketstream.triage.history import CustomerHistories

log = logging.getLogger(__name__)

FETCH_MIN_BYTES = 256 * 1024
FETCH_MAX_WAIT_MS = 250
"""The copy asks the broker for entries in chunks: at most a quarter of a second late, and with
fewer, larger fetches under load (each worker reads every complaint's entry)."""

SWEEP_SECONDS = 3600.0
"""How often customers with nothing in the window are dropped from the copy."""


def entry_of(value: bytes) -> HistoryEntry:
    ticket_id, category, at = orjson.loads(value)
    return str(ticket_id), str(category), float(at)


class HistoryReplica:
    """This worker's copy of every customer's history, kept by reading `customers.history`."""

    def __init__(self, app: faust.App, settings: Settings, histories: CustomerHistories) -> None:
        self.settings = settings
        self.histories = histories
        self.topic = settings.topic(CUSTOMER_HISTORY)
        self.out = Emitter(app, self.topic)
        self.ready = asyncio.Event()
        self.bad_entries = 0

    async def send(self, customer_id: str, entry: HistoryEntry) -> None:
        """Tell every worker (this one has it already: `TicketProcess.on_complaint`)."""
        await self.out.send(customer_id.encode(), orjson.dumps(list(entry)))

    async def wait_ready(self) -> None:
        if not self.ready.is_set():
            log.info("waiting for the customer history to be read from %s before triaging", self.topic)
            await self.ready.wait()

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the topic into the copy; a record that is not an entry is counted and
        skipped (it cannot be dead-lettered usefully: every worker reads it)."""
        try:
            if key is None or value is None:
                raise ValueError("no key or value")
            self.histories.remember(key.decode(), entry_of(value))
        except (ValueError, TypeError, UnicodeDecodeError, orjson.JSONDecodeError):
            self.bad_entries += 1
            metrics.CUSTOMER_HISTORY_BAD.inc()

    async def run(self) -> None:
        """Read the topic for as long as the worker runs; start over on a failure."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the copy must keep following: log, retry
                log.warning("customer history: reading %s failed (%s); retrying in 2 s", self.topic, type(exc).__name__)
                await asyncio.sleep(2.0)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            client_id=f"{self.settings.app_id}-customer-history",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_min_bytes=FETCH_MIN_BYTES,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            **self.settings.kafka_client_options(),
        )
        await consumer.start()
        try:
            partitions = await self._partitions(consumer)
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            if not self.ready.is_set():
                await self._catch_up(consumer, tps)
            swept = time.monotonic()
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
                for records in batches.values():
                    for record in records:
                        self.apply(record.key, record.value)
                if time.monotonic() - swept > SWEEP_SECONDS:
                    swept = time.monotonic()
                    self.histories.forget_before(time.time() - self.histories.window_days * 86_400)
        finally:
            await consumer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> set[int]:
        while True:
            partitions = consumer.partitions_for_topic(self.topic)
            if partitions:
                return set(partitions)
            log.warning("customer history: topic %s not found yet (ticketstream topics create)", self.topic)
            await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka's way to ask again
            await asyncio.sleep(1.0)

    async def _catch_up(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        """Read up to the end offsets found now, then open the gate (`ready`)."""
        started = time.monotonic()
        end: dict[Any, int] = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if end[tp] > await consumer.position(tp)}
        read = 0
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=5000)
            for records in batches.values():
                for record in records:
                    self.apply(record.key, record.value)
                read += len(records)
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
        log.info(
            "customer history read: %d records, %d customers, in %.1f s",
            read,
            len(self.histories),
            time.monotonic() - started,
        )
        self.ready.set()
