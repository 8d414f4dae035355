"""`streams.tables.put`: a table write whose changelog record goes to the producer directly, the
same bytes to the same partition as Faust's own `table[key] = value` (read back from a real
broker; recovery from such records is tested in test_intake_pipeline.py)."""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path
from typing import Any

import pytest
from faust.streams import _current_event
from faust.types.tuples import ConsumerMessage
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from ticketstream.settings import load_settings
from ticketstream.streams.tables import encode, put
from ticketstream.topology import TABLE_TICKETS
from ticketstream.workers.app import create_app
from ticketstream.workers.topics import admin_client

from .harness import isolated_settings, wait_until


def test_put_writes_the_store_and_sends_faust_s_changelog_record_to_the_event_s_partition(
    bootstrap: str, tmp_path: Path
) -> None:
    settings = isolated_settings(bootstrap, tmp_path, partitions=6)
    app = create_app(settings)
    app.finalize()
    table = app.tables[TABLE_TICKETS]
    changelog = table.changelog_topic.get_topic_name()
    admin = admin_client(settings)
    admin.create_topics([NewTopic(changelog, 6, 1)])
    admin.close()
    value = {"seen": {"k": 1}, "triage": {"ticket_id": "T-1", "text": "网络断了 網絡"}}

    async def run() -> None:
        await app.producer.start()
        try:
            with pytest.raises(RuntimeError, match="while an agent processes"):
                await put(table, "T-1", value)
            message = ConsumerMessage("tickets.inbound", 5, 42, 0.0, 0, None, b"T-1", b"{}", None)
            event = table.changelog_topic._create_event(b"T-1", b"{}", {}, message)
            token = _current_event.set(weakref.ref(event))  # what a stream does while its agent processes `event`
            try:
                await put(table, "T-1", value)
            finally:
                _current_event.reset(token)
            await app.producer.flush()
        finally:
            await app.producer.stop()

    asyncio.run(run())
    assert table["T-1"] == value
    key, _ = table.changelog_topic.prepare_key("T-1", table.key_serializer)
    body, _ = table.changelog_topic.prepare_value(value, table.value_serializer)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=1000)
    consumer.assign([TopicPartition(changelog, p) for p in range(6)])
    consumer.seek_to_beginning()
    records: list[Any] = []
    wait_until(lambda: bool(records.extend(consumer.poll(500).values()) or records), 30, "the changelog record")
    consumer.close()
    assert [(r.partition, r.key, r.value) for batch in records for r in batch] == [(5, key, body)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def tickets_table(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The worker's ticket table (no broker), made once for the property test's examples."""
    app = create_app(
        load_settings(environ={}, bootstrap_servers="127.0.0.1:9", data_dir=tmp_path_factory.mktemp("encode"))
    )
    app.finalize()
    return app.tables[TABLE_TICKETS]


@settings(max_examples=300, deadline=None)
@given(key=st.text(max_size=24), value=json_values)
def test_encode_writes_the_bytes_of_faust_s_json_serializer(tickets_table: Any, key: str, value: Any):
    """`put` encodes a table's key and value itself: byte for byte what Faust's changelog topic
    would (so recovery and standbys read it as Faust's own), for any JSON key and value."""
    table = tickets_table
    assert encode(key) == table.changelog_topic.prepare_key(key, table.key_serializer)[0]
    assert encode(value) == table.changelog_topic.prepare_value(value, table.value_serializer)[0]
    beyond_json = {"set": {1, 2}, "value": value}  # what Faust's codec writes through its `default`
    assert encode(beyond_json) == table.changelog_topic.prepare_value(beyond_json, table.value_serializer)[0]
