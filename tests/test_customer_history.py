"""Every worker's copy of every customer's history (repeat detection, 二次投訴): merged the same
whatever order entries arrive in, and, on the real broker, fed by the other workers' complaints
and read back in full by a restarted worker before it triages anything."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka import KafkaProducer

from tests.factories import encode, received
from tests.harness import TopicReader, isolated_settings, wait_until, worker_process
from ticketstream.schemas.events import Event
from ticketstream.streams.customer_history import HistoryReplica
from ticketstream.topology import CUSTOMER_HISTORY, INBOUND, TRIAGED
from ticketstream.triage.engine import HISTORY_LIMIT, TriageEngine
from ticketstream.triage.history import CustomerHistories

ENGINE = TriageEngine()
DAY = 86_400.0

entries = st.lists(
    st.tuples(
        st.sampled_from([f"T-{i}" for i in range(80)]),
        st.sampled_from(["technical.network_quality", "business.tariff_billing"]),
        st.floats(min_value=0, max_value=90 * DAY, allow_nan=False).map(round),
    ),
    max_size=120,
    unique_by=lambda e: e[0],  # one entry per ticket, as triage makes them
)


@given(entries, st.randoms(use_true_random=False))
def test_a_copy_holds_the_same_entries_whatever_order_they_arrive_in(items, rnd):
    """Workers send entries concurrently and each copy reads them in its own order (its own at
    once, the others' later; all again after a restart): every copy must end up the same."""
    in_order, shuffled = CustomerHistories(30), CustomerHistories(30)
    for entry in items:
        in_order.remember("C", entry)
    again = list(items) + list(items)  # read twice: a restart re-reads the topic
    rnd.shuffle(again)
    for entry in again:
        shuffled.remember("C", entry)
    assert in_order.of("C") == shuffled.of("C")
    kept = in_order.of("C")
    assert len(kept) <= HISTORY_LIMIT
    if kept:
        newest = max(at for _, _, at in items)
        assert all(at >= newest - 30 * DAY for _, _, at in kept)


def test_customers_with_nothing_in_the_window_are_forgotten():
    histories = CustomerHistories(30)
    histories.remember("OLD", ("T-1", "technical.network_quality", 1_000.0))
    histories.remember("NEW", ("T-2", "technical.network_quality", 50 * DAY))
    assert histories.forget_before(40 * DAY) == 1
    assert histories.of("OLD") == [] and len(histories) == 1


def test_a_record_that_is_not_an_entry_is_counted_and_skipped():
    """Every worker reads the topic, so a bad record can be neither dead-lettered once nor allowed
    to stop the copy."""
    from ticketstream.settings import Settings

    replica = HistoryReplica(object(), Settings(), CustomerHistories(30))  # type: ignore[arg-type]
    for key, value in [(None, b"[]"), (b"C", None), (b"C", b"not json"), (b"C", b"[1, 2]"), (b"\xff", b"[]")]:
        replica.apply(key, value)
    replica.apply(b"C", orjson.dumps(["T-1", "technical.network_quality", 5.0]))
    assert replica.bad_entries == 5
    assert replica.histories.of("C") == [("T-1", "technical.network_quality", 5.0)]


@pytest.mark.integration
def test_the_other_workers_complaints_count_and_a_restarted_worker_reads_them_first(bootstrap, tmp_path: Path):
    from ticketstream.workers.topics import create_topics

    settings = isolated_settings(bootstrap, tmp_path)
    create_topics(settings)
    now = datetime.now(UTC)
    text = "家里网速很慢，看视频一直卡"
    category = ENGINE.triage(Event.model_validate(received("X", content=text)), [])[0].category.value
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    # Two complaints of this customer that "another worker" triaged days ago, and a broken record.
    history_topic = settings.topic(CUSTOMER_HISTORY)
    for ticket, days in (("ELSEWHERE-1", 6), ("ELSEWHERE-2", 3)):
        at = (now - timedelta(days=days)).timestamp()
        producer.send(history_topic, key=b"C-HIST", value=json.dumps([ticket, category, at]).encode())
    producer.send(history_topic, key=b"C-HIST", value=b"{broken")
    producer.flush()
    triaged = TopicReader(settings, settings.topic(TRIAGED))

    def record(ticket_id: str) -> dict | None:
        triaged.poll()
        found = [json.loads(r.value) for r in triaged.records if r.key == ticket_id.encode()]
        return found[0] if found else None

    def complain(ticket_id: str, at: datetime) -> None:
        event = received(ticket_id, occurred_at=at.isoformat(), content=text)
        event["data"]["customer"]["id"] = "C-HIST"
        producer.send(settings.topic(INBOUND), key=ticket_id.encode(), value=encode(event))
        producer.flush()

    with worker_process(settings, tmp_path / "worker-1.log"):
        complain("HERE-1", now - timedelta(days=1))
        wait_until(lambda: record("HERE-1") is not None, 60, "HERE-1 triaged")
    assert record("HERE-1")["repeat_count"] == 2  # both of the other worker's complaints

    # A new worker process (its copy starts empty) reads the topic before it triages: HERE-1,
    # which the first process sent, counts too.
    with worker_process(settings, tmp_path / "worker-2.log"):
        complain("HERE-2", now)
        wait_until(lambda: record("HERE-2") is not None, 60, "HERE-2 triaged")
    assert record("HERE-2")["repeat_count"] == 3
    log = (tmp_path / "worker-2.log").read_text()
    assert "customer history read: 4 records, 1 customers" in log  # the broken one skipped


def test_the_old_changelog_keeps_only_each_customers_newest_history():
    from ticketstream.workers.history_migration import latest_histories

    older = orjson.dumps([["T-1", "technical.network_quality", 1.0]])
    newer = orjson.dumps([["T-1", "technical.network_quality", 1.0], ["T-2", "business.tariff_billing", 2.0]])
    records = [
        (b'"C-1"', older),
        (b'"C-2"', older),
        (b'"C-1"', newer),
        (b'"C-2"', None),  # a tombstone: the customer's history was removed
        (b"not json", older),
        (b'"C-3"', b'{"not": "a history"}'),
    ]
    assert latest_histories(records) == {"C-1": orjson.loads(newer)}


@pytest.mark.integration
def test_topics_create_copies_the_old_releases_history_once(bootstrap, tmp_path: Path):
    """Upgrading from the release with a `customer_history` table: the repeats of the last 30
    days must keep counting, so `topics create` copies that table's changelog when it creates
    `customers.history`, and only then."""
    from kafka.admin import KafkaAdminClient, NewTopic

    from ticketstream.workers.history_migration import legacy_changelog
    from ticketstream.workers.topics import create_topics

    settings = isolated_settings(bootstrap, tmp_path)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(legacy_changelog(settings), settings.partitions, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    old = [["OLD-1", "technical.network_quality", 100.0], ["OLD-2", "technical.network_quality", 200.0]]
    producer.send(legacy_changelog(settings), key=b'"C-OLD"', value=orjson.dumps(old[:1]))
    producer.send(legacy_changelog(settings), key=b'"C-OLD"', value=orjson.dumps(old))
    producer.flush()

    results = {r.name: r for r in create_topics(settings)}
    history = results[settings.topic(CUSTOMER_HISTORY)]
    assert history.created and "copied 2 history entries of 1 customers" in history.note
    reader = TopicReader(settings, settings.topic(CUSTOMER_HISTORY))
    reader.read_until(2, 30)
    assert sorted((r.key, orjson.loads(r.value)) for r in reader.records) == [(b"C-OLD", e) for e in old]
    again = {r.name: r for r in create_topics(settings)}[settings.topic(CUSTOMER_HISTORY)]
    assert not again.created and again.note == ""  # an existing topic: nothing copied twice
