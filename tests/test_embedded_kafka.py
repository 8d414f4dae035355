"""The embedded broker launcher: clear errors, status/stop, and a three-node cluster that survives a failure."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from ticketstream.workers import embedded_kafka
from ticketstream.workers.embedded_kafka import KafkaLauncherError


def test_missing_java_is_named(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KafkaLauncherError, match="Java 17"):
        embedded_kafka.find_java()


def test_old_java_is_refused(monkeypatch, tmp_path: Path):
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
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
        producer = KafkaProducer(
            bootstrap_servers=cluster.bootstrap_servers, acks="all", retries=20, request_timeout_ms=10_000
        )
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
        assert sorted(values) == sorted(
            [f"before-{i}".encode() for i in range(100)] + [f"after-{i}".encode() for i in range(100)]
        )
    finally:
        embedded_kafka.stop(tmp_path / "k3")
    assert not any(embedded_kafka.pid_alive(n.pid) for n in cluster.nodes)


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ticketstream.workers.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parents[1],
    )


def _count(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    ends = consumer.end_offsets(parts)
    consumer.close()
    return sum(ends.values())


def test_replication_defaults_to_three_copies_with_two_in_sync():
    from ticketstream.topology import replication

    assert replication(1) == (1, None)
    assert replication(2) == (2, None)
    assert replication(3) == (3, 2)
    assert replication(5) == (3, 2)
    assert replication(5, configured=1) == (1, None)


@pytest.mark.integration
def test_kafka_start_keeps_the_cluster_and_restarts_its_dead_nodes(tmp_path: Path):
    """kill -9 of one node, then of every node: `kafka start` brings back the same cluster (id,
    ports, data); `kafka status` names the dead node; only `--fresh` wipes."""
    from tests.harness import isolated_settings, wait_until
    from ticketstream.workers.topics import create_topics, describe_topics

    directory = tmp_path / "k3"
    cluster = embedded_kafka.start(directory, nodes=3)
    try:
        settings = isolated_settings(cluster.bootstrap_servers, tmp_path, partitions=3)
        create_topics(settings)
        # A new topic reaches every node's metadata a moment after its creation: poll for it.
        wait_until(lambda: all(r["exists"] for r in describe_topics(settings)), 30, "every new topic described")
        rows = {r["topic"]: r for r in describe_topics(settings)}
        inbound = rows[settings.topic("tickets.inbound")]
        assert inbound["replication_factor"] == 3 and inbound["config"]["min.insync.replicas"] == "2"
        topic = settings.topic("tickets.inbound")
        producer = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers, acks="all", retries=20)
        for i in range(300):
            producer.send(topic, key=str(i).encode(), value=b"x")
        producer.flush()

        embedded_kafka.stop_node(cluster.nodes[1], hard=True)
        assert embedded_kafka.status(directory) is not None  # still found with a node down
        shown = _cli("kafka", "status", "--dir", str(directory))
        assert shown.returncode == 1 and "2 of 3" in shown.stdout
        assert re.search(rf"node 2: dead +pid {cluster.nodes[1].pid}, port {cluster.nodes[1].port}", shown.stdout)
        assert re.search(rf"node 1: running +pid {cluster.nodes[0].pid}, port {cluster.nodes[0].port}", shown.stdout)
        for i in range(300):  # min ISR 2: writes go on with one node down
            producer.send(topic, key=str(i).encode(), value=b"y")
        producer.flush(timeout=60)
        producer.close()

        started = _cli("kafka", "start", "--dir", str(directory))
        assert started.returncode == 0, started.stderr
        assert re.search(rf"restarted node 2 \(pid \d+, port {cluster.nodes[1].port}\)", started.stderr)
        assert "restarted node 1" not in started.stderr
        after = embedded_kafka.Cluster.load(directory)
        assert after and after.cluster_id == cluster.cluster_id
        assert [n.port for n in after.nodes] == [n.port for n in cluster.nodes]
        assert all(embedded_kafka.pid_alive(n.pid) for n in after.nodes)

        for node in after.nodes:  # every node killed: still the same cluster, with every message
            embedded_kafka.stop_node(node, hard=True)
        assert embedded_kafka.status(directory) is None
        again = _cli("kafka", "start", "--dir", str(directory))
        assert again.returncode == 0, again.stderr
        assert again.stderr.count("restarted node") == 3
        assert _count(cluster.bootstrap_servers, topic) == 600
        assert _cli("kafka", "start", "--nodes", "1", "--dir", str(directory)).returncode == 2  # no silent resize

        fresh = _cli("kafka", "start", "--fresh", "--nodes", "1", "--dir", str(directory))
        assert fresh.returncode == 0, fresh.stderr
        new = embedded_kafka.Cluster.load(directory)
        assert new and new.cluster_id != cluster.cluster_id and len(new.nodes) == 1
        admin = KafkaAdminClient(bootstrap_servers=new.bootstrap_servers)
        assert topic not in admin.list_topics()
        admin.close()
    finally:
        embedded_kafka.stop(directory)
