"""De-duplication and per-ticket order hold whatever partitioner the producer used.

The same events go to `tickets.inbound` twice: once from librdkafka (confluent-kafka with its
default partitioner, `consistent_random`: CRC32 of the key) and once from the project's
publisher (kafka-python, murmur2), with two workers in one group. Most tickets land on two
different inbound partitions, often owned by different workers; intake de-duplicates each
ticket on its home partition (in place, or after re-keying through `tickets.keyed`), so each
ticket is accepted once, triaged once, and its events stay in the order its producer sent them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Producer
from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from tests.factories import encode, lifecycle, received
from tests.harness import TopicReader, isolated_settings, metric_value, wait_until, worker_healthy, worker_process
from ticketstream.settings import Settings
from ticketstream.streams.emit import Murmur2Partitioner, home_partition
from ticketstream.topology import ACCEPTED, INBOUND, KEYED, TRIAGED
from ticketstream.workers.embedded_kafka import free_ports
from ticketstream.workers.publisher import publish_lines
from ticketstream.workers.topics import create_topics

TICKETS = 40
FOLLOWED = 10
"""Tickets that also get two lifecycle events, to check their order after re-keying."""
PARTITIONS = 6


def test_home_partition_is_the_partitioner_of_the_publisher_and_of_the_worker():
    """`home_partition` (aiokafka's murmur2) places keys where kafka-python's default partitioner
    (`ticketstream publish`, Java's algorithm) does: those events need no second hop."""
    for n in (1, 4, 6, 12):
        for i in range(500):
            key = f"T-{i}".encode()
            assert home_partition(key, n) == (kafka_python_murmur2(key) & 0x7FFFFFFF) % n


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=64))
def test_the_workers_partitioner_is_aiokafkas_default_with_the_hash_remembered(key: bytes, n: int) -> None:
    """The worker's producer partitions with `Murmur2Partitioner` (a cached murmur2): every key
    lands where aiokafka's `DefaultPartitioner` puts it, the first time and from the cache."""
    partitions = list(range(n))
    expected = DefaultPartitioner()(key, partitions, partitions)
    for _ in range(2):
        assert Murmur2Partitioner()(key, partitions, partitions) == expected
        assert home_partition(key, n) == expected
    assert Murmur2Partitioner()(None, partitions, [n - 1]) == n - 1  # no key: an available partition


def traffic() -> list[dict]:
    events: list[dict] = []
    for i in range(TICKETS):
        ticket = f"PT-{i:03d}"
        events.append(received(ticket, customer={"id": f"C-{i}", "tier": "ordinary"}))
        if i < FOLLOWED:
            events.append(lifecycle("ticket.responded", ticket, "2026-11-23T10:20:00+08:00", agent="A-1"))
            events.append(lifecycle("ticket.investigation_started", ticket, "2026-11-23T10:40:00+08:00"))
    return events


def total(workers: tuple[Settings, ...], metric: str) -> float:
    return sum(metric_value(s, metric) for s in workers)


def wait_for_both_workers(workers: tuple[Settings, Settings]) -> list[str]:
    """Both ready (/health: a rebalance and its recovery done, none under way), then one probe
    complaint sent to every partition, until each is accepted and both workers accepted some:
    the group has assigned every partition, to both. Returns the probes' ticket ids."""
    first = workers[0]
    for s in workers:
        wait_until(lambda: worker_healthy(s), 90, f"worker on {s.web_port} ready")
    probes: list[dict] = []
    i = 0
    while len(probes) < PARTITIONS:
        ticket = f"PROBE-{i}"
        if home_partition(ticket.encode(), PARTITIONS) == len(probes):
            probes.append(received(ticket, customer={"id": f"CP-{i}", "tier": "ordinary"}))
        i += 1
    report = publish_lines(((n, encode(e)) for n, e in enumerate(probes, 1)), first)
    assert report.sent == PARTITIONS
    wait_until(
        lambda: (
            total(workers, "ticketstream_intake_accepted_total") >= PARTITIONS
            and all(metric_value(s, "ticketstream_intake_accepted_total") > 0 for s in workers)
        ),
        60,
        "a probe on every partition accepted, by both workers",
    )
    for s in workers:
        wait_until(lambda: worker_healthy(s), 30, f"worker on {s.web_port} ready")
    return [p["ticket_id"] for p in probes]


@pytest.mark.integration
def test_each_ticket_accepted_once_whatever_the_partitioner(bootstrap, tmp_path: Path):
    settings = isolated_settings(bootstrap, tmp_path, partitions=PARTITIONS)
    second = settings.model_copy(update={"web_port": free_ports(1)[0], "data_dir": tmp_path / "worker-2"})
    workers = (settings, second)
    create_topics(settings)
    events = traffic()
    inbound = settings.topic(INBOUND)
    with worker_process(settings, tmp_path / "w1.log"), worker_process(second, tmp_path / "w2.log"):
        probes = wait_for_both_workers(workers)
        accepted_before = total(workers, "ticketstream_intake_accepted_total")
        finished_before = total(workers, "ticketstream_intake_processing_seconds_count")

        # A channel system on librdkafka, default settings but acks=all (README) and idempotence
        # (librdkafka keeps a partition's order through retries only with it).
        librdkafka = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
        placed: list[tuple[str, int]] = []

        def delivered(err, msg) -> None:
            assert err is None, err
            placed.append((msg.key().decode(), msg.partition()))

        for event in events:
            librdkafka.produce(inbound, key=event["ticket_id"].encode(), value=encode(event), on_delivery=delivered)
        assert librdkafka.flush(30) == 0 and len(placed) == len(events)
        del librdkafka  # destroyed now, not after the broker has stopped
        report = publish_lines(((n, encode(e)) for n, e in enumerate(events, 1)), settings)
        assert report.sent == len(events) and not report.rejected

        wait_until(
            lambda: total(workers, "ticketstream_intake_processing_seconds_count") >= finished_before + 2 * len(events),
            90,
            "intake to finish with every message",
        )
        triaged = TopicReader(settings, settings.topic(TRIAGED))

        def first_revisions() -> list[str]:
            bodies = [json.loads(r.value) for r in triaged.records]
            return [b["ticket_id"] for b in bodies if b["revision"] == 1]

        wait_until(
            lambda: triaged.poll() >= 0 and len(set(first_revisions())) >= TICKETS + PARTITIONS,
            60,
            "every complaint triaged",
        )
        # Every event sent twice: each accepted once, the other copy dropped as a duplicate.
        assert total(workers, "ticketstream_intake_accepted_total") - accepted_before == len(events)
        assert total(workers, "ticketstream_intake_duplicates_total") == len(events)
        # Only librdkafka's events off their home partition took the second hop.
        off_home = [(key, p) for key, p in placed if p != home_partition(key.encode(), PARTITIONS)]
        assert len({key for key, _ in off_home}) >= TICKETS // 4, "librdkafka agreed with murmur2: this proves little"
        assert total(workers, "ticketstream_intake_rekeyed_total") == len(off_home)
        triaged.poll()
        triaged.close()
        # Read while both workers run: stopping one hands its partitions to the other, which
        # re-reads what the stopped one had not committed yet and forwards it again (a
        # redelivery, at-least-once), so after the workers stop the topic may hold copies.
        accepted = TopicReader(settings, settings.topic(ACCEPTED))
        accepted.read_until(len(events) + PARTITIONS, 30)
        accepted.poll()
        accepted.close()
        keyed = TopicReader(settings, settings.topic(KEYED))
        keyed.read_until(len(off_home), 30)
        keyed.poll()
        keyed.close()
    complaints = [e["ticket_id"] for e in events if e["type"] == "complaint.received"]
    assert sorted(first_revisions()) == sorted(complaints + probes), "a complaint triaged twice or not at all"

    by_ticket: dict[str, list[str]] = {}
    for record in accepted.records:
        body = json.loads(record.value)
        by_ticket.setdefault(body["ticket_id"], []).append(body["type"])
    sent: dict[str, list[str]] = {}
    for event in events:
        sent.setdefault(event["ticket_id"], []).append(event["type"])
    assert {t: types for t, types in by_ticket.items() if t.startswith("PT-")} == sent, (
        "a ticket accepted twice, not at all, or out of order"
    )
    # tickets.keyed holds only what was off its home partition, each on its ticket's home partition.
    assert len(keyed.records) == len(off_home)
    assert all(r.partition == home_partition(r.key, PARTITIONS) for r in keyed.records)
