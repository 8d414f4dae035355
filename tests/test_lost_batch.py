"""A batch the broker refuses for good is never committed past: the worker stops instead, and the
messages behind it are processed again, nothing lost (streams/emit.py `undelivered`,
workers/consumer.py `_commit`)."""

from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from tests.factories import encode, received
from tests.harness import TopicReader, isolated_settings, spawn_worker, stop_process, wait_until, worker_process
from ticketstream.topology import INBOUND, STATE
from ticketstream.workers.lag import consumer_lag
from ticketstream.workers.topics import admin_client, create_topics

pytestmark = pytest.mark.integration

TICKETS = 20
PHONE = "13812345678"  # the factory's customer phone: never in a log


def _max_message_bytes(settings, topic: str, value: str) -> None:
    admin = admin_client(settings)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": value})])
    finally:
        admin.close()


def test_a_batch_the_broker_refuses_stops_the_worker_before_it_commits_and_nothing_is_lost(
    bootstrap: str, tmp_path: Path
) -> None:
    settings = isolated_settings(bootstrap, tmp_path)
    create_topics(settings)
    state_topic = settings.topic(STATE)
    _max_message_bytes(settings, state_topic, "300")  # every ticket's state record is larger: refused, not retried
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    for i in range(TICKETS):
        producer.send(settings.topic(INBOUND), key=f"L-{i}".encode(), value=encode(received(f"L-{i}")))
    producer.flush()
    producer.close()

    log = tmp_path / "refused.log"
    proc = spawn_worker(settings, log)
    try:
        wait_until(lambda: proc.poll() is not None, 120, "the worker to stop on the batch it could not deliver")
    finally:
        stop_process(proc)
    text = log.read_text()
    assert "was not delivered" in text and "not committing past" in text
    assert PHONE not in text
    inbound = [row for row in consumer_lag(settings, [settings.app_id]) if row.topic == settings.topic(INBOUND)]
    assert all(not row.committed for row in inbound), inbound  # nothing committed past the lost records

    _max_message_bytes(settings, state_topic, "1048588")  # the broker's default again
    with worker_process(settings, tmp_path / "again.log"):
        reader = TopicReader(settings, state_topic)
        try:
            wait_until(
                lambda: (
                    reader.poll() and {r.key for r in reader.records} >= {f"L-{i}".encode() for i in range(TICKETS)}
                ),
                120,
                "every ticket's state record after the restart",
            )
        finally:
            reader.close()
