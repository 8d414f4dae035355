"""`streams.emit.produce` against a real broker: every record where the producer's own `send`
would put it (murmur2 of the key, or the partition named), delivered; what it cannot place cheaply
(no key, a large record, a partition the topic lacks) gets the producer's own handling or a clear
error; and a topic that grows is seen with the metadata that says so (`PartitionCounts`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import faust
import pytest
from aiokafka.producer.message_accumulator import MessageAccumulator
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import NewPartitions, NewTopic

from ticketstream.settings import Settings
from ticketstream.streams import emit
from ticketstream.streams.emit import SMALL_RECORD, home_partition, produce
from ticketstream.workers.app import create_app
from ticketstream.workers.topics import admin_client

from .harness import isolated_settings, wait_until


@asynccontextmanager
async def started_producer(settings: Settings) -> AsyncIterator[faust.App]:
    """The worker's app with only its producer running (no agents, no consumer)."""
    app = create_app(settings)
    app.finalize()
    await app.producer.start()
    try:
        yield app
    finally:  # bounded: a stranded batch would hold the producer's flush for its whole timeout
        await asyncio.wait_for(app.producer.stop(), 30)


def test_produce_places_and_delivers_records_as_the_producer_s_own_send(bootstrap: str, tmp_path: Path) -> None:
    settings = isolated_settings(bootstrap, tmp_path, partitions=6)
    topic = settings.topic("emit")
    admin = admin_client(settings)
    try:
        admin.create_topics([NewTopic(topic, 6, 1)])

        async def run() -> None:
            async with started_producer(settings) as app:
                own_send = app.producer.send
                slow: list[str] = []

                async def counted_send(topic: str, *args: object) -> object:  # which records take the producer's send
                    slow.append(topic)
                    return await own_send(topic, *args)

                app.producer.send = counted_send  # type: ignore[method-assign]
                keys = [f"T-{i}".encode() for i in range(60)]
                fast = [await (await produce(app, topic, key, b"v")) for key in keys]
                # the first record waited for the new topic's metadata in the producer's send; every
                # other keyed record went straight into its batch
                assert slow == [topic]
                own = [await (await own_send(topic, key, b"v", None, None, None)) for key in keys]
                assert [m.partition for m in fast] == [m.partition for m in own]
                assert [m.partition for m in fast] == [home_partition(key, 6) for key in keys]
                assert len({m.partition for m in fast}) == 6
                offsets = [m.offset for m in fast if m.partition == fast[0].partition]
                assert offsets == sorted(set(offsets))  # delivered, in order, once each

                named = await (await produce(app, topic, b"T-1", b"v", partition=5, headers=[("h", b"1")]))
                assert named.partition == 5
                with pytest.raises(ValueError, match="has no partition 6"):
                    await produce(app, topic, b"T-1", b"v", partition=6)
                assert slow == [topic]
                keyless = await (await produce(app, topic, None, b"v"))
                assert 0 <= keyless.partition < 6
                large = await (await produce(app, topic, b"T-1", b"x" * SMALL_RECORD))
                assert large.partition == home_partition(b"T-1", 6)
                with pytest.raises(Exception, match="MessageSizeTooLarge"):  # the producer's own clear error
                    await produce(app, topic, b"T-1", b"x" * 2_000_000)
                assert slow == [topic] * 4  # and the keyless, the large and the too large record

                counts = emit._sink(app).partitions
                assert counts(topic) == 6
                admin.create_partitions({topic: NewPartitions(8)})
                deadline = asyncio.get_running_loop().time() + 30
                while counts(topic) != 8 and asyncio.get_running_loop().time() < deadline:
                    await app.producer._ensure_producer().client.force_metadata_update()  # the broker may lag
                    await asyncio.sleep(0.2)
                assert counts(topic) == 8  # forgotten when the metadata changed
                grown = await (await produce(app, topic, b"T-1", b"v"))
                assert grown.partition == home_partition(b"T-1", 8)

        asyncio.run(run())
    finally:
        admin.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, 5)])
    consumer.seek_to_beginning()
    headers: list[object] = []
    wait_until(
        lambda: (
            bool(headers.extend(r.headers for batch in consumer.poll(500).values() for r in batch if r.headers))
            or bool(headers)
        ),
        30,
        "the record sent with a header",
    )
    consumer.close()
    assert headers == [[("h", b"1")]]


def test_a_topic_placed_by_produce_stays_tracked_when_another_topic_is_added(bootstrap: str, tmp_path: Path) -> None:
    """aiokafka refreshes metadata for every topic while its client tracks none, and for the
    tracked ones only after; a record placed by `produce` must leave its topic tracked, or the
    first record of a new topic (through the producer's `send`) narrows the metadata to that topic
    and the placed record's batch waits for a leader it no longer knows (a long linger keeps the
    batch queued across that refresh)."""
    settings = isolated_settings(bootstrap, tmp_path, partitions=2, producer_linger_ms=1000)
    placed, added = settings.topic("placed"), settings.topic("added")
    admin = admin_client(settings)
    try:
        admin.create_topics([NewTopic(placed, 2, 1)])

        async def run() -> None:
            async with started_producer(settings) as app:
                client = app.producer._ensure_producer().client
                assert not client._topics  # tracks none yet: a refresh now fetches every topic
                await client.force_metadata_update()
                assert emit._sink(app).partitions(placed) == 2
                admin.create_topics([NewTopic(added, 2, 1)])  # not in the metadata just fetched
                first = await produce(app, placed, b"T-1", b"v")  # placed here, queued for a second
                await (await produce(app, added, b"T-1", b"v"))  # the producer's send: tracks `added`
                delivered = await asyncio.wait_for(first, 15)
                assert delivered.partition == home_partition(b"T-1", 2)

        asyncio.run(run())
    finally:
        admin.close()


@pytest.mark.parametrize(
    ("linger_ms", "accumulator"),
    [(300, "lingering"), (300, "aiokafka"), (0, "lingering")],
)
def test_new_batches_wake_the_sender_only_when_no_linger_timer_is_due(
    bootstrap: str, tmp_path: Path, linger_ms: int, accumulator: str
) -> None:
    """A record for a partition without a batch starts a batch. With a linger, the sender's timer
    for the first lingering batch ends before any later batch's linger, so the later batches do
    not wake it (`LingeringAccumulator`): 48 partitions' records are delivered together after one
    linger in a few walks of the batches, where aiokafka's own accumulator walks them again for
    most new batches. With no linger a new batch wakes the sender, as in aiokafka."""
    settings = isolated_settings(bootstrap, tmp_path, partitions=48, producer_linger_ms=linger_ms)
    topic = settings.topic("lingering")
    admin = admin_client(settings)
    try:
        admin.create_topics([NewTopic(topic, 48, 1)])

        async def run() -> None:
            async with started_producer(settings) as app:
                await (await produce(app, topic, None, b"warm-up"))  # metadata known, the sender idle
                batches = emit._sink(app).batches
                assert isinstance(batches, emit.LingeringAccumulator)
                if accumulator == "aiokafka":
                    batches.__class__ = MessageAccumulator
                walks = 0
                walk = batches.drain_by_nodes

                def counted(*args: object, **kwargs: object) -> object:
                    nonlocal walks
                    walks += 1
                    return walk(*args, **kwargs)

                batches.drain_by_nodes = counted
                keys = [
                    next(f"T-{i}-{p}".encode() for i in range(10_000) if home_partition(f"T-{i}-{p}".encode(), 48) == p)
                    for p in range(48)
                ]
                loop = asyncio.get_running_loop()
                started = loop.time()
                futures = []
                for key in keys:  # one new batch each, the loop free to run the sender in between
                    futures.append(await produce(app, topic, key, b"v"))
                    await asyncio.sleep(0)
                delivered = await asyncio.wait_for(asyncio.gather(*futures), 15)
                elapsed = loop.time() - started
                assert sorted(m.partition for m in delivered) == list(range(48))
                if linger_ms:
                    assert elapsed >= linger_ms / 1000 * 0.9  # sent when the first batch's linger ended
                    if accumulator == "lingering":
                        assert walks <= 8, walks  # the first batch, the timer, request ends: not one per batch
                    else:  # woken by most new batches (a few come while it is between waits)
                        assert walks >= 16, walks
                else:
                    assert walks > 4, walks  # woken by new batches (coalesced while a request is in flight)
                    assert elapsed < linger_ms / 1000 + 1

        asyncio.run(run())
    finally:
        admin.close()


def test_send_appends_to_the_open_batch_without_a_future_per_record(bootstrap: str, tmp_path: Path) -> None:
    """`send` (every agent's output) puts a record into its partition's open batch with no
    delivery future of its own; the batch is delivered whole, in order, by the producer's flush
    (what Faust awaits before it commits)."""
    settings = isolated_settings(bootstrap, tmp_path, partitions=2, producer_linger_ms=1000)
    topic = settings.topic("unawaited")
    admin = admin_client(settings)
    try:
        admin.create_topics([NewTopic(topic, 2, 1)])

        async def run() -> None:
            async with started_producer(settings) as app:
                await (await produce(app, topic, b"T-1", b"warm-up"))  # metadata known
                first = await produce(app, topic, b"T-1", b"0")  # opens the partition's batch
                for i in range(1, 50):
                    await emit.send(app, topic, b"T-1", str(i).encode())
                tp = TopicPartition(topic, home_partition(b"T-1", 2))
                (batch,) = emit._sink(app).batches._batches[tp]
                assert batch.record_count == 50
                assert len(batch._msg_futures) == 1  # the first record's, from `produce`
                await asyncio.wait_for(app.producer.flush(), 15)  # waits for the batch (sent when its linger ends)
                assert first.done()

        asyncio.run(run())
    finally:
        admin.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, home_partition(b"T-1", 2))])
    consumer.seek_to_beginning()
    values: list[bytes] = []
    wait_until(
        lambda: (
            bool(values.extend(r.value for batch in consumer.poll(500).values() for r in batch)) or len(values) >= 51
        ),
        30,
        "the 50 records of the batch",
    )
    consumer.close()
    assert values == [b"warm-up"] + [str(i).encode() for i in range(50)]
