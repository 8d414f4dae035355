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
    to stop the copy or to change a customer's history (a time far ahead would prune every real
    entry of the customer on every worker)."""
    from ticketstream.settings import Settings

    replica = HistoryReplica(object(), Settings(), CustomerHistories(30))  # type: ignore[arg-type]
    good = orjson.dumps(["T-1", "technical.network_quality", 5.0])
    bad = [
        (None, good),
        (b"C", None),
        (b"\xff", good),
        (b"C", b"not json"),
        (b"C", b"[1, 2]"),
        (b"C", b'{"a": 1, "b": 2, "1": 3}'),
        (b"C", b"[1, 2, true]"),
        (b"C", b'["T-2", "technical.network_quality", true]'),
        (b"C", b"[null, null, 1e300]"),
        (b"C", b'["T-2", "technical.network_quality", 1e300]'),
        (b"C", b'["T-2", "technical.network_quality", -5]'),
        (b"C", b'["", "technical.network_quality", 5]'),
    ]
    replica.apply(b"C", good)
    for key, value in bad:
        replica.apply(key, value)
    assert replica.bad_entries == len(bad)
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

    def complain(ticket_id: str, at: datetime, customer: str = "C-HIST") -> None:
        event = received(ticket_id, occurred_at=at.isoformat(), content=text)
        event["data"]["customer"]["id"] = customer
        producer.send(settings.topic(INBOUND), key=ticket_id.encode(), value=encode(event))
        producer.flush()

    with worker_process(settings, tmp_path / "worker-1.log"):
        complain("HERE-1", now - timedelta(days=1))
        wait_until(lambda: record("HERE-1") is not None, 60, "HERE-1 triaged")
        # While it runs: "another worker" triages a first complaint of a new customer; once this
        # worker's copy has it (its gauge counts the customer), this worker's complaint counts it.
        at = (now - timedelta(hours=2)).timestamp()
        producer.send(history_topic, key=b"C-LIVE", value=json.dumps(["LIVE-ELSEWHERE", category, at]).encode())
        producer.flush()
        wait_until(lambda: customers_in_copy(settings) == 2, 30, "the running worker's copy to take the entry")
        complain("LIVE-HERE", now - timedelta(hours=1), customer="C-LIVE")
        wait_until(lambda: record("LIVE-HERE") is not None, 60, "LIVE-HERE triaged")
        # A complaint dated days ahead (a channel's clock gone wrong) is triaged, but its entry is
        # refused and counted, never sent: every copy would prune the customer's history by it.
        refused = metric(settings, "ticketstream_customer_history_bad_entries_total")
        complain("AHEAD-1", now + timedelta(days=3))
        wait_until(lambda: record("AHEAD-1") is not None, 60, "AHEAD-1 triaged")
        assert metric(settings, "ticketstream_customer_history_bad_entries_total") == refused + 1
    assert record("HERE-1")["repeat_count"] == 2  # both of the other worker's complaints
    assert record("LIVE-HERE")["repeat_count"] == 1

    # A new worker process (its copy starts empty) reads the topic before it starts: HERE-1,
    # which the first process sent, counts too.
    with worker_process(settings, tmp_path / "worker-2.log"):
        complain("HERE-2", now)
        wait_until(lambda: record("HERE-2") is not None, 60, "HERE-2 triaged")
    assert record("HERE-2")["repeat_count"] == 3
    log = (tmp_path / "worker-2.log").read_text()
    # the broken one skipped; AHEAD-1's entry never sent
    loaded = log.index("customer history read: 6 records, 2 customers")
    assert loaded < log.index("[^Worker]: Ready"), "the copy is read before the worker starts"


def metric(settings, name: str) -> float:
    """A worker's unlabelled metric `name`, from its /metrics page."""
    from urllib.request import urlopen

    with urlopen(f"http://127.0.0.1:{settings.web_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    line = next(x for x in text.splitlines() if x.startswith(f"{name} "))
    return float(line.split()[1])


def customers_in_copy(settings) -> int:
    return int(metric(settings, "ticketstream_customer_history_customers"))


def test_the_old_changelog_keeps_only_each_customers_newest_history():
    from ticketstream.streams.tables import encode
    from ticketstream.workers.history_migration import Histories

    older = encode([["T-1", "technical.network_quality", 1.0]])
    newer = encode([["T-1", "technical.network_quality", 1.0], ["T-2", "business.tariff_billing", 2.0]])
    histories = Histories()
    histories.fold(
        [
            (encode("C-1"), older),
            (encode("C-2"), older),
            (encode("C-1"), newer),
            (encode("C-2"), None),  # a tombstone: the customer's history was removed
            (b"not json", older),
            (encode("C-3"), b'{"not": "a history"}'),
        ]
    )
    assert histories.by_customer == {"C-1": orjson.loads(newer)} and histories.skipped == 2


@pytest.mark.integration
def test_copy_history_carries_the_old_releases_history_and_can_run_again(bootstrap, tmp_path: Path):
    """Upgrading from the release with a `customer_history` table: the repeats of the last 30
    days must keep counting, so `topics copy-history` copies that table's changelog (keys and
    values as Faust's JSON codec wrote them) into `customers.history`; a second run sends the
    entries again, which every copy merges by ticket."""
    from kafka.admin import KafkaAdminClient, NewTopic

    from ticketstream.streams.tables import encode
    from ticketstream.workers.history_migration import copy_legacy_history, legacy_changelog
    from ticketstream.workers.topics import create_topics

    settings = isolated_settings(bootstrap, tmp_path)
    with pytest.raises(RuntimeError, match="customer_history-changelog does not exist"):
        copy_legacy_history(settings)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(legacy_changelog(settings), settings.partitions, 1)])
    admin.close()
    with pytest.raises(RuntimeError, match="topics create` first"):  # a send would create it carelessly
        copy_legacy_history(settings)
    create_topics(settings)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    old = [["OLD-1", "technical.network_quality", 100.0], ["OLD-2", "technical.network_quality", 200.0]]
    producer.send(legacy_changelog(settings), key=encode("C-OLD"), value=encode(old[:1]))
    producer.send(legacy_changelog(settings), key=encode("C-OLD"), value=encode(old))
    producer.flush()

    assert copy_legacy_history(settings) == (2, 1)
    assert copy_legacy_history(settings) == (2, 1)
    reader = TopicReader(settings, settings.topic(CUSTOMER_HISTORY))
    reader.read_until(4, 30)
    copy = CustomerHistories(30)
    for r in reader.records:
        assert r.key == b"C-OLD"
        copy.remember("C-OLD", tuple(orjson.loads(r.value)))
    assert copy.of("C-OLD") == [tuple(e) for e in old]
