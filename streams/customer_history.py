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

A worker reads the topic from its beginning to the end offsets it finds then *before* it starts
(`load`, run by `run_worker`: before it joins its consumer group and opens its web port), and
follows it from the app's first start (`follow`), catching up with what other workers sent
meanwhile while its tables recover; its first complaint waits for that catch-up (`ready`), so a
restarted worker counts every complaint the cluster has sent in the window.

The topic's retention (35 days) covers the repeat window (30); the copy keeps each customer's
entries within the window of their newest, and drops every hour the customers with nothing in the
window any more.

The entry is produced in the same step as the ticket's state and before the step's input offset
is committed (the producer is flushed before every commit), so an entry is lost only if the
complaint is read and triaged again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
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

TOPIC_WAIT_SECONDS = 60.0
"""How long a starting worker waits for `customers.history` to exist before it gives up."""

PROGRESS_SECONDS = 5.0
STALL_SECONDS = 120.0

MAX_AHEAD_SECONDS = 86_400.0
"""An entry may be this far ahead of the reader's clock (clocks differ); one further ahead is
not an entry: the window is pruned from a customer's newest entry, so a far-future one would
wipe the customer's history on every worker."""


def entry_of(value: bytes, now: float) -> HistoryEntry:
    """A history entry from its record value, checked (`checked_entry`)."""
    return checked_entry(orjson.loads(value), now)


def checked_entry(entry: object, now: float) -> HistoryEntry:
    """`[ticket id, category, epoch seconds]` with a time that is not far ahead of `now`, else
    ValueError: what every worker's copy accepts, and so what a worker keeps and sends itself."""
    if not (isinstance(entry, list | tuple) and len(entry) == 3):
        raise ValueError("not a three-item list")
    ticket_id, category, at = entry
    if not (isinstance(ticket_id, str) and ticket_id and isinstance(category, str) and category):
        raise ValueError("ticket id and category must be non-empty strings")
    if isinstance(at, bool) or not isinstance(at, int | float) or not 0 < at <= now + MAX_AHEAD_SECONDS:
        raise ValueError("the time must be epoch seconds, not in the future")
    return ticket_id, category, float(at)


class HistoryReplica:
    """This worker's copy of every customer's history, kept by reading `customers.history`."""

    def __init__(self, app: faust.App, settings: Settings, histories: CustomerHistories) -> None:
        self.settings = settings
        self.histories = histories
        self.topic = settings.topic(CUSTOMER_HISTORY)
        self.out = Emitter(app, self.topic)
        self.ready = asyncio.Event()
        """Set once the follower has caught up with the topic's end as it found it (after `load`,
        only the entries sent while the worker started)."""
        self.positions: dict[TopicPartition, int] = {}
        """Per partition, the offset after the last record applied: where reading resumes."""
        self.bad_entries = 0

    async def send(self, customer_id: str, entry: HistoryEntry) -> None:
        """Tell every worker (this one has it already: `streams.triage.Triage`)."""
        await self.out.send(customer_id.encode(), orjson.dumps(list(entry)))

    async def wait_ready(self) -> bool:
        """Wait for the copy to catch up; True if it had not yet (the caller waited). A worker
        started by `run_worker` has loaded it before it joined its group and follows it from its
        first start, so by the end of table recovery it has usually caught up."""
        if self.ready.is_set():
            return False
        log.info("waiting for the customer history to be read from %s before triaging", self.topic)
        await self.ready.wait()
        return True

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the topic into the copy; a record that is not an entry is counted and
        skipped (it cannot be dead-lettered usefully: every worker reads it)."""
        try:
            if key is None or value is None:
                raise ValueError("no key or value")
            self.histories.remember(key.decode(), entry_of(value, time.time()))
        except (ValueError, TypeError, UnicodeDecodeError, orjson.JSONDecodeError):
            self.bad_entries += 1
            metrics.CUSTOMER_HISTORY_BAD.inc()

    def _apply_batches(self, batches: dict[TopicPartition, list[Any]]) -> int:
        count = 0
        for tp, records in batches.items():
            for record in records:
                self.apply(record.key, record.value)
            if records:
                self.positions[tp] = records[-1].offset + 1
                count += len(records)
        return count

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            client_id=f"{self.settings.app_id}-customer-history",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_min_bytes=FETCH_MIN_BYTES,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            **self.settings.kafka_client_options(),
        )

    async def load(self, say: Callable[[str], None] = log.info) -> None:
        """Read the topic from its beginning to the end offsets it has now, then set `ready`.
        `run_worker` runs this before the worker starts (so before its logging is set up: it
        passes `say`), so the worker joins its group (and its web port answers) only with a
        complete copy."""
        consumer = self._consumer()
        try:
            await consumer.start()
            tps = await self._assign(consumer, give_up_after=TOPIC_WAIT_SECONDS)
            await self._read_to_end(consumer, tps, say)
        finally:
            await consumer.stop()
        say("following the customer history from here")

    async def follow(self) -> None:
        """Read new entries for as long as the worker runs (loading first if `load` was not run);
        after a failure, resume from the last record applied."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the copy must keep following: log, retry
                log.warning("customer history: reading %s failed (%s); retrying in 2 s", self.topic, type(exc).__name__)
                await asyncio.sleep(2.0)

    async def _follow(self) -> None:
        consumer = self._consumer()
        try:
            await consumer.start()
            tps = await self._assign(consumer)
            if not self.ready.is_set():
                await self._read_to_end(consumer, tps)
                self.ready.set()
            swept = time.monotonic()
            while True:
                self._apply_batches(await consumer.getmany(timeout_ms=1000, max_records=5000))
                if time.monotonic() - swept > SWEEP_SECONDS:
                    swept = time.monotonic()
                    self.histories.forget_before(time.time() - self.histories.window_days * 86_400)
        finally:
            await consumer.stop()

    async def _assign(self, consumer: AIOKafkaConsumer, give_up_after: float | None = None) -> list[TopicPartition]:
        """Assign every partition of the topic (as it has them now: partitions added later are read
        after a restart) at the position reading resumes from."""
        started = time.monotonic()
        warned: float | None = None
        while not (partitions := consumer.partitions_for_topic(self.topic)):
            if give_up_after is not None and time.monotonic() - started > give_up_after:
                raise RuntimeError(f"topic {self.topic} does not exist: run `ticketstream topics create`")
            if warned is None or time.monotonic() - warned > 30:
                warned = time.monotonic()
                log.warning("customer history: topic %s not found yet (ticketstream topics create)", self.topic)
            await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka's way to ask again
            await asyncio.sleep(1.0)
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        for tp in tps:
            if tp in self.positions:
                consumer.seek(tp, self.positions[tp])
            else:
                await consumer.seek_to_beginning(tp)
        return tps

    async def _read_to_end(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition], say: Callable[[str], None] = log.info
    ) -> None:
        """Read up to the end offsets found now; give up when nothing has been read for
        `STALL_SECONDS` (a partition without a leader would otherwise hold a start forever)."""
        started = reported = progressed = time.monotonic()
        end: dict[Any, int] = await consumer.end_offsets(tps)
        at = {tp: await consumer.position(tp) for tp in tps}
        pending = {tp for tp in tps if end[tp] > at[tp]}
        total = sum(end[tp] - at[tp] for tp in pending)
        read = 0
        while pending:
            got = self._apply_batches(await consumer.getmany(*pending, timeout_ms=1000, max_records=5000))
            read += got
            if got:
                progressed = time.monotonic()
            elif time.monotonic() - progressed > STALL_SECONDS:
                raise RuntimeError(
                    f"reading {self.topic} made no progress for {STALL_SECONDS:.0f} s "
                    f"({read} of ≈ {total} records read): is every partition led by a broker?"
                )
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
            if time.monotonic() - reported > PROGRESS_SECONDS:
                reported = time.monotonic()
                say(f"customer history: {read} of ≈ {total} records read from {self.topic}")
        say(
            f"customer history read: {read} records, {len(self.histories)} customers, "
            f"in {time.monotonic() - started:.1f} s"
        )
