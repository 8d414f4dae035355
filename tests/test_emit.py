"""`streams.emit.produce` against a real broker: every record where the producer's own `send`
would put it (murmur2 of the key, or the partition named), delivered; what it cannot place cheaply
(no key, a large record, a partition the topic lacks) gets the producer's own handling or a clear
error; and a topic that grows is seen with the metadata that says so (`PartitionCounts`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from kafka.admin import NewPartitions, NewTopic

from ticketstream.streams.emit import SMALL_RECORD, PartitionCounts, home_partition, produce
from ticketstream.workers.app import create_app
from ticketstream.workers.topics import admin_client

from .harness import isolated_settings


def test_produce_places_and_delivers_records_as_the_producer_s_own_send(bootstrap: str, tmp_path: Path) -> None:
    settings = isolated_settings(bootstrap, tmp_path, partitions=6)
    topic = settings.topic("emit")
    admin = admin_client(settings)
    try:
        admin.create_topics([NewTopic(topic, 6, 1)])

        async def run() -> None:
            app = create_app(settings)
            app.finalize()
            await app.producer.start()
            try:
                keys = [f"T-{i}".encode() for i in range(60)]
                fast = [await (await produce(app, topic, key, b"v")) for key in keys]
                own = [await (await app.producer.send(topic, key, b"v", None, None, None)) for key in keys]
                assert [m.partition for m in fast] == [m.partition for m in own]
                assert [m.partition for m in fast] == [home_partition(key, 6) for key in keys]
                assert len({m.partition for m in fast}) == 6
                offsets = [m.offset for m in fast if m.partition == fast[0].partition]
                assert offsets == sorted(set(offsets))  # delivered, in order, once each

                named = await (await produce(app, topic, b"T-1", b"v", partition=5, headers=[("h", b"1")]))
                assert named.partition == 5
                with pytest.raises(ValueError, match="has no partition 6"):
                    await produce(app, topic, b"T-1", b"v", partition=6)
                keyless = await (await produce(app, topic, None, b"v"))
                assert 0 <= keyless.partition < 6
                large = await (await produce(app, topic, b"T-1", b"x" * SMALL_RECORD))
                assert large.partition == home_partition(b"T-1", 6)
                with pytest.raises(Exception, match="MessageSizeTooLarge"):  # the producer's own clear error
                    await produce(app, topic, b"T-1", b"x" * 2_000_000)

                counts = PartitionCounts.of(app.producer._ensure_producer().client.cluster)
                assert counts(topic) == 6
                admin.create_partitions({topic: NewPartitions(8)})
                await app.producer._ensure_producer().client.force_metadata_update()
                assert counts(topic) == 8  # forgotten when the metadata changed
                grown = await (await produce(app, topic, b"T-1", b"v"))
                assert grown.partition == home_partition(b"T-1", 8)
            finally:
                await app.producer.stop()

        asyncio.run(run())
    finally:
        admin.close()
