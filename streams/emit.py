"""Producing from agents straight to the app's Kafka producer.

Faust's `Topic.send`/`send_soon` go through a per-message buffer that awaits one produce at a
time; measured here it caps a pass-through agent near 3,300 events/s. Handing the bytes to the
underlying producer directly roughly doubles that. At-least-once still holds: before Faust
commits source offsets it flushes this same producer (`Consumer.commit` -> `producer.flush()`).
Partitioning is murmur2 of the key (`Murmur2Partitioner`, the app's producer's partitioner), the
same as Java, aiokafka and kafka-python clients, so topics keyed by ticket id stay co-partitioned.

Every record of every agent takes `send` (about six per inbound event; `produce` where the
record's delivery is awaited: a table write's, for the RocksDB store's offset), so it does for a
keyed record only what the record needs: its partition from a remembered partition count, and the
append to aiokafka's batch for that partition. What it leaves out, per record: Faust's wrapper
(a signal and a header check), aiokafka's wait for metadata it already has, and aiokafka's three
set and two list copies of the topic's partitions (`PartitionCounts`) — together ≈ 5 µs a record
— and, for `send`, the record's own delivery future (`LingeringAccumulator.append_unawaited`).
A record it cannot place that way (no key, metadata not known yet, too large to judge cheaply)
takes the producer's own `send`, with its waits and its errors.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from functools import lru_cache, partial
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from aiokafka.producer.message_accumulator import MessageAccumulator, MessageBatch
from aiokafka.structs import TopicPartition

key_hash = lru_cache(maxsize=1 << 16)(murmur2)
"""murmur2 of a key, remembered for the most recent 65,536 keys. aiokafka's murmur2 is pure Python
(≈ 10 µs a key), and one inbound event makes several records with its ticket's key (the accepted
event, its ticket's state, SLA events, triage revisions, queue copies); the cache makes each
after the first a dictionary lookup."""

log = logging.getLogger(__name__)

SMALL_RECORD = 64 * 1024
"""Key, value and header bytes below which a record is surely within the producer's request size (1 MB by
default), so `produce` need not estimate its encoded size; a larger one takes the producer's `send`,
which measures it and refuses it with a clear error."""


def home_partition(key: bytes, partitions: int) -> int:
    """The partition the worker's producer gives `key` among `partitions` (murmur2, as Java's
    default partitioner): where every ticket-keyed topic and table of the worker has it."""
    return (key_hash(key) & 0x7FFFFFFF) % partitions


class Murmur2Partitioner:
    """aiokafka's `DefaultPartitioner` with the hash remembered (`key_hash`): the same partition
    for every key, a random available one for a record without a key."""

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return random.choice(available or all_partitions)
        return all_partitions[home_partition(key, len(all_partitions))]


class PartitionCounts:
    """How many partitions each topic has, by a Kafka client's cluster metadata, remembered for as
    long as that metadata stays the same. aiokafka copies a topic's partitions into a new set on
    every lookup, and replaces its whole map of topics' partitions with a new one on every update
    (in whichever thread the client runs): the counts are kept for one such map and forgotten when
    the map is another, so a topic that grows is seen at the same moment as by a lookup. Used from
    the event loop's thread only; the client's thread only ever swaps the map."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self._map: Any = None
        self._known: dict[str, int] = {}

    def __call__(self, topic: str) -> int | None:
        """The topic's partition count, None while its metadata is unknown."""
        partitions = self.cluster._partitions  # one read: the map of this moment (topic -> partition -> metadata)
        if partitions is not self._map:
            self._map, self._known = partitions, {}
        count = self._known.get(topic)
        if count is None:
            found = partitions.get(topic)
            if not found:
                return None
            count = self._known[topic] = len(found)
        return count


class LingeringAccumulator(MessageAccumulator):  # type: ignore[misc]  # aiokafka has no type hints
    """aiokafka's batches of records per partition, without a wake-up of the sender for each new
    batch when the sender will wake before that batch's linger ends anyway.

    aiokafka's sender sleeps until its accumulator has something: a full batch, the end
    of the first lingering batch's linger (a timer), the end of a request in flight, or any new
    batch. On each wake it walks every partition's batch. A worker appends to some hundred
    partitions within one linger (every ticket-keyed topic times the partitions, plus the teams'
    queues), so the new batches alone woke it a hundred times per linger for a hundred-partition
    walk each: 5-6 % of a worker's time on fresh complaints (py-spy, `bench_pipeline.py
    --complaints-only`). A new batch changes nothing the sender would do while its linger timer is
    set (a new batch's linger ends after every earlier batch's) or while a request to the batch's
    broker is in flight (the sender skips that broker's batches until the request ends, and then
    walks them all and sets the timer). Otherwise, with no linger (`producer_linger_ms` 0), or with
    a transaction manager (idempotence or transactions), a new batch wakes it as aiokafka does."""

    in_flight: set[int] | frozenset[int] = frozenset()
    """The sender's brokers with a request in flight (its own set, `_Sink` links it)."""

    undelivered: BaseException | None = None
    """The first failure of a batch to be delivered (`undelivered`): set once, never cleared."""

    def _append_batch(self, builder: Any, tp: TopicPartition) -> Any:
        if (
            self._linger_time <= 0
            or self._txn_manager is not None
            or (self._wakeup_handle is None and self._cluster.leader_for_partition(tp) not in self.in_flight)
        ):
            batch = super()._append_batch(builder, tp)
        else:
            batch = MessageBatch(tp, builder, self._batch_ttl, self._linger_time)
            self._batches[tp].append(batch)
        batch.future.add_done_callback(partial(self._batch_done, tp))
        return batch

    def _batch_done(self, tp: TopicPartition, delivered: asyncio.Future[Any]) -> None:
        """Remember a batch that failed for good (a non-retriable error, its partition leaderless
        past the request timeout, the producer failing): its records are lost unless the
        messages that caused them are read again, so the worker must never commit past them."""
        if delivered.cancelled() or (error := delivered.exception()) is None:
            return
        if self.undelivered is None:
            self.undelivered = error
        log.error("a batch of records for %s was not delivered: %s", tp, type(error).__name__)

    def append_unawaited(self, tp: TopicPartition, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> bool:
        """Append a record to `tp`'s open batch without a delivery future of its own: False when
        it must take `add_message` instead (no open batch, the batch full, the producer closing or
        failed). aiokafka makes a future per record and sets it when the batch is delivered; a
        record sent with `send` is never awaited, and the future, its loop lookup and its result
        cost ≈ 3 % of a worker's time. The batch keeps its own future and its first record's."""
        if self._closed or self._exception is not None:
            return False
        pending = self._batches.get(tp)
        if not pending:
            return False
        return pending[-1]._builder.append(timestamp=None, key=key, value=value, headers=headers) is not None


class _Sink:
    """One aiokafka producer as `produce` uses it: its batches and its partition counts. Holds the
    producer only weakly (its callbacks lead back to the app, the key of `_sinks`)."""

    def __init__(self, producer: Any) -> None:
        self.producer = weakref.ref(producer)
        self.batches = producer._message_accumulator
        if type(self.batches) is MessageAccumulator:
            self.batches.__class__ = LingeringAccumulator  # the same batches; a new batch wakes the sender less often
            self.batches.in_flight = producer._sender._in_flight
        self.timeout = producer._request_timeout_ms / 1000
        self.client = producer.client
        self.partitions = PartitionCounts(producer.client.cluster)
        self.tps: dict[tuple[str, int], TopicPartition] = {}

    def track(self, topic: str) -> asyncio.Future[Any] | None:
        """Have the client keep `topic`'s metadata from now on: the future of its metadata request,
        or None when the client tracks the topic already (its own set of topics says so). aiokafka
        asks the brokers only for the topics it tracks, and its own `send` tracks a topic only when
        its metadata is missing; after a refresh for every topic (what it makes while it tracks
        none) a record placed here would leave its topic untracked, and the next refresh for the
        tracked ones would drop that topic's leaders while its batch waits. Faust's table routing
        reads the same metadata."""
        if topic in self.client._topics:
            return None
        added: asyncio.Future[Any] = self.client.add_topic(topic)
        return added


_sinks: weakref.WeakKeyDictionary[faust.App, _Sink] = weakref.WeakKeyDictionary()


def _sink(app: faust.App) -> _Sink:
    """The sink of the app's current aiokafka producer (a new one if Faust made a new producer)."""
    producer = app.producer._ensure_producer()
    sink = _sinks.get(app)
    if sink is None or sink.producer() is not producer:
        sink = _sinks[app] = _Sink(producer)
    return sink


async def producer_partitions(app: faust.App, topic: str, timeout: float) -> int | None:
    """How many partitions `topic` has by the app's producer's metadata, which Faust's table
    routing (`assignor.key_store`) reads too: the topic is tracked from now on (`_Sink.track`),
    and if its metadata is missing this waits up to `timeout` seconds for it (None if it does
    not come)."""
    sink = _sink(app)
    update = sink.track(topic)
    count = sink.partitions(topic)
    if count is None:
        try:
            await asyncio.wait_for(update or sink.client.force_metadata_update(), timeout)
        except TimeoutError:
            return None
        count = sink.partitions(topic)
    return count


def _placed(
    app: faust.App, topic: str, key: bytes | None, value: bytes, partition: int | None, headers: Any
) -> tuple[_Sink, TopicPartition] | None:
    """The sink and partition of a record `produce` places itself; None for one that takes the
    producer's `send` (no key, metadata not known yet, too large to judge cheaply)."""
    sink = _sink(app)
    sink.track(topic)
    count = sink.partitions(topic)
    if partition is not None and count is not None and not 0 <= partition < count:
        raise ValueError(f"{topic} has no partition {partition} (it has {count})")
    size = len(value) + (0 if key is None else len(key))
    if headers:
        size += sum(len(k) + len(v) for k, v in headers)
    if key is None or count is None or size >= SMALL_RECORD:
        return None
    if partition is None:
        partition = home_partition(key, count)
    tp = sink.tps.get((topic, partition))
    if tp is None:
        tp = sink.tps[topic, partition] = TopicPartition(topic, partition)
    return sink, tp


async def produce(
    app: faust.App,
    topic: str,
    key: bytes | None,
    value: bytes,
    partition: int | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> asyncio.Future[Any]:
    """Hand one record to the app's producer and return the future of its delivery (set when the
    broker has it). `partition` None: murmur2 of the key, as the producer's partitioner."""
    placed = _placed(app, topic, key, value, partition, headers)
    if placed is None:
        return await app.producer.send(topic, key, value, partition, None, headers)
    sink, tp = placed
    fut: asyncio.Future[Any] = await sink.batches.add_message(tp, key, value, sink.timeout, headers=headers or [])
    return fut


async def send(
    app: faust.App,
    topic: str,
    key: bytes | None,
    value: bytes,
    partition: int | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """`produce` for a record whose delivery nobody awaits (every agent's output: Faust waits for
    the producer's batches before it commits, not for a record's future), so it gets no future of
    its own when its partition has an open batch (`append_unawaited`). A batch that fails for
    good is logged and stops the worker's next commit (`undelivered`)."""
    placed = _placed(app, topic, key, value, partition, headers)
    if placed is not None:
        sink, tp = placed
        batches = sink.batches
        if isinstance(batches, LingeringAccumulator) and batches.append_unawaited(tp, key, value, headers or []):
            return
    delivered = await produce(app, topic, key, value, partition, headers)  # a new batch (or the producer's send)
    delivered.add_done_callback(_retrieved)


def _retrieved(delivered: asyncio.Future[Any]) -> None:
    """Mark a record's failure seen: the batch reports it (`LingeringAccumulator._batch_done`);
    without this asyncio logs each unawaited future's error again, with a traceback."""
    if not delivered.cancelled():
        delivered.exception()


def undelivered(app: faust.App) -> BaseException | None:
    """The first batch of the app's producer that failed for good, if any: the consumer checks it
    after the producer's flush and before every commit (`workers.consumer.Consumer._commit`), and
    stops the worker instead of committing past records that were lost. Records that were sent
    without a future of their own (`send`) have no other way to report it."""
    sink = _sinks.get(app)
    batches = None if sink is None else sink.batches
    return batches.undelivered if isinstance(batches, LingeringAccumulator) else None


class Emitter:
    """Sends raw key/value bytes to one topic through the app's producer (`send`)."""

    def __init__(self, app: faust.App, topic: str) -> None:
        self.app = app
        self.topic = topic

    async def send(
        self,
        key: bytes | None,
        value: bytes,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Hand one record to the producer; `partition` None lets murmur2 of the key choose."""
        await send(self.app, self.topic, key, value, partition, headers)
