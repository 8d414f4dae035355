"""The embedded broker launcher: clear errors, status/stop, and a three-node cluster that survives a failure."""

import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from workers import embedded_kafka
from workers.embedded_kafka import KafkaLauncherError


def test_missing_java_is_named(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KafkaLauncherError, match="Java 17"):
        embedded_kafka.find_java()


def test_old_java_is_refused(monkeypatch, tmp_path: Path):
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho \'openjdk version "11.0.2" 2019-01-15\' >&2\n')
    fake.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(KafkaLauncherError, match="Java 11"):
        embedded_kafka.find_java()


def test_missing_maven_is_named_when_kafka_is_not_cached(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("TICKETSTREAM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KafkaLauncherError, match="apt-get install -y maven"):
        embedded_kafka.kafka_libs()


def test_cluster_id_never_starts_with_a_dash():
    # kafka-storage reads "-t -abc..." as a missing argument; one random id in 64 starts with "-".
    draws = iter([b"\xf8" + bytes(15), b"\x01" * 16])
    cluster_id = embedded_kafka._cluster_id(lambda: next(draws))
    assert cluster_id == "AQEBAQEBAQEBAQEBAQEBAQ"
    ids = {embedded_kafka._cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


@pytest.mark.integration
def test_status_and_stop(kafka_cluster, tmp_path: Path):
    running = embedded_kafka.status(Path(kafka_cluster.dir))
    assert running and running.bootstrap_servers == kafka_cluster.bootstrap_servers
    assert embedded_kafka.status(tmp_path) is None
    assert embedded_kafka.stop(tmp_path) is False
    assert (Path(kafka_cluster.nodes[0].dir) / "server.log").stat().st_size > 0


@pytest.mark.integration
def test_three_nodes_keep_serving_when_one_dies(tmp_path: Path):
    cluster = embedded_kafka.start(tmp_path / "k3", nodes=3)
    try:
        assert len(cluster.bootstrap_servers.split(",")) == 3
        admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
        admin.create_topics([NewTopic("replicated", 3, 3, topic_configs={"min.insync.replicas": "2"})])
        admin.close()
        producer = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers, acks="all", retries=20,
                                 request_timeout_ms=10_000)
        for i in range(100):
            producer.send("replicated", key=str(i % 7).encode(), value=f"before-{i}".encode())
        producer.flush()
        embedded_kafka.stop_node(cluster.nodes[1], hard=True)
        for i in range(100):
            producer.send("replicated", key=str(i % 7).encode(), value=f"after-{i}".encode())
        producer.flush(timeout=60)
        producer.close()
        survivors = ",".join(n.address for n in cluster.nodes if n.node_id != 2)
        consumer = KafkaConsumer(bootstrap_servers=survivors, enable_auto_commit=False)
        parts = [TopicPartition("replicated", p) for p in range(3)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        values: list[bytes] = []
        deadline = time.monotonic() + 60
        while len(values) < 200 and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                values.extend(r.value for r in batch)
        consumer.close()
        assert sorted(values) == sorted([f"before-{i}".encode() for i in range(100)] +
                                        [f"after-{i}".encode() for i in range(100)])
    finally:
        embedded_kafka.stop(tmp_path / "k3")
    assert not any(embedded_kafka._pid_alive(n.pid) for n in cluster.nodes)
