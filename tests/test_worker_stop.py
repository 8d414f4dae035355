"""A worker told to stop stops, even when its brokers are gone (it used to wait on metadata forever)."""

import signal
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer

from tests.factories import encode, received
from tests.harness import isolated_settings, metric_value, wait_until, worker_process
from ticketstream.topology import INBOUND
from ticketstream.workers import embedded_kafka
from ticketstream.workers.topics import create_topics

pytestmark = pytest.mark.integration


def test_worker_exits_within_its_stop_deadline_when_the_broker_is_gone(tmp_path: Path):
    cluster = embedded_kafka.start(tmp_path / "kafka")
    settings = isolated_settings(cluster.bootstrap_servers, tmp_path, stop_timeout_seconds=5)
    create_topics(settings)
    log = tmp_path / "worker.log"
    try:
        with worker_process(settings, log) as proc:
            # Work in flight: offsets to commit and table writes to flush when it is told to stop.
            producer = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers, linger_ms=5)
            for i in range(200):
                producer.send(settings.topic(INBOUND), key=f"S-{i}".encode(), value=encode(received(f"S-{i}")))
            producer.flush()
            producer.close()
            wait_until(
                lambda: metric_value(settings, "ticketstream_ticket_messages_total", {"source": "triage"}) >= 50,
                60,
                "the worker busy with the complaints",
            )
            embedded_kafka.stop(tmp_path / "kafka")
            proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            proc.wait(timeout=5 + 20)
            assert time.monotonic() - started < 25
            assert "still stopping after 5 s" in log.read_text()
    finally:
        embedded_kafka.stop(tmp_path / "kafka")
