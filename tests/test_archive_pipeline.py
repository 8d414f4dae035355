"""The archiver on the real broker: 10,000 tickets archived exactly once across a kill -9,
corrupt records dead-lettered while the rest goes on, and the contract with a real worker."""

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaProducer
from sqlalchemy import select

from tests.archive_feed import feed
from tests.factories import encode, lifecycle, received
from tests.harness import REPO, TopicReader, isolated_settings, wait_until, worker_process
from ticketstream.archive.pii import Protector
from ticketstream.archive.schema import tickets
from ticketstream.archive.store import Store
from ticketstream.settings import Settings
from ticketstream.streams.metrics import scrape
from ticketstream.topology import ACCEPTED, DLQ, INBOUND, SLA_EVENTS, STATE
from ticketstream.workers.embedded_kafka import free_ports
from ticketstream.workers.topics import create_topics
from ticketstream.workers.worker import stop_process

pytestmark = pytest.mark.integration


def start_archiver(settings: Settings, url: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ticketstream.workers.cli", "archive", "--db", url],
            cwd=REPO,
            env=settings.as_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_until(
        lambda: (
            proc.poll() is not None
            or scrape(settings.archive_metrics_port, "ticketstream_archive_rows_total") is not None
        ),
        60,
        "the archiver's /metrics",
    )
    assert proc.poll() is None, log.read_text()[-3000:]
    return proc


def produce(settings: Settings, messages: dict[str, list[tuple[bytes, bytes]]]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        linger_ms=20,
        batch_size=1 << 19,
        max_request_size=1 << 21,
    )
    for topic, items in messages.items():
        for key, value in items:
            producer.send(settings.topic(topic), key=key, value=value)
    producer.flush()
    producer.close()


CORRUPT = [
    (STATE, b"{not json"),
    (STATE, json.dumps({"status": "closed", "events": []}).encode()),
    (SLA_EVENTS, b"[1, 2, 3]"),
]


@pytest.mark.slow
def test_ten_thousand_tickets_archived_once_across_a_kill_9(bootstrap, tmp_path, postgres_admin):
    """Produced once, archived twice by two consumer groups: into SQLite and into PostgreSQL."""
    from tests.postgres import fresh_database

    f = feed(10_000)
    settings = isolated_settings(
        bootstrap,
        tmp_path,
        archive_metrics_port=free_ports(1)[0],
        archive_pii="encrypt",
        archive_key=Protector.generate_key(),
    )
    create_topics(settings)
    messages = {topic: list(items) for topic, items in f.messages.items()}
    # corrupt records in the middle of the stream: dead-lettered, and the rest goes on
    for topic, value in CORRUPT:
        messages[topic].insert(len(messages[topic]) // 2, (b"BAD", value))
    produce(settings, messages)
    for kind, url in (
        ("sqlite", f"sqlite:///{tmp_path / 'archive.db'}"),
        ("postgresql", fresh_database(postgres_admin)),
    ):
        group = settings.model_copy(update={"app_id": f"{settings.app_id}-{kind}"})
        archive_with_a_kill(group, url, f, tmp_path / kind)


def archive_with_a_kill(settings: Settings, url: str, f, logs: Path) -> None:
    logs.mkdir()
    store = Store.open(url)
    store.migrate()
    proc = start_archiver(settings, url, logs / "archiver-1.log")
    wait_until(
        lambda: store.counts("tickets")["tickets"] >= 3_000 or proc.poll() is not None,
        120,
        "a third of the tickets",
        interval=0.5,
    )
    proc.send_signal(signal.SIGKILL)  # mid-run: a batch may be written but its offsets not committed
    proc.wait()
    assert store.counts()["tickets"] < 10_000, "the kill came too late to test anything"

    proc = start_archiver(settings, url, logs / "archiver-2.log")
    want = {"tickets": 10_000, "ticket_events": len(f.event_ids), "sla_events": len(f.sla_ids)}
    try:
        # counting is a table scan on SQLite: ask once a second, not five times (two shared cores)
        wait_until(lambda: store.counts(*want) == want, 180, f"the whole feed archived ({want})", interval=1.0)
        wait_until(
            lambda: scrape(settings.archive_metrics_port, "ticketstream_archive_lag_messages") == 0,
            30,
            "the archiver's lag to reach 0",
        )
        assert scrape(settings.archive_metrics_port, "ticketstream_archive_rows_total", {"table": "tickets"}) > 0
    finally:
        stop_process(proc)
    counts = store.counts()
    assert {k: counts[k] for k in want} == want, "lost or duplicated rows"
    with store.engine.connect() as conn:
        rows = {
            r.ticket_id: r
            for r in conn.execute(
                select(
                    tickets.c.ticket_id,
                    tickets.c.status,
                    tickets.c.cycle,
                    tickets.c.event_count,
                    tickets.c.grade,
                    tickets.c.pii,
                )
            )
        }
    assert set(rows) == set(f.final)
    wrong = [
        tid
        for tid, final in f.final.items()
        if (rows[tid].status, rows[tid].cycle, rows[tid].event_count, rows[tid].grade)
        != (final["status"], final["cycle"], len(final["events"]), final["grade"])
    ]
    assert not wrong, f"{len(wrong)} tickets with a wrong final state, e.g. {wrong[:3]}"
    assert all(r.pii for r in rows.values())  # encrypt mode: every ticket's customer sealed

    dlq = TopicReader(settings, settings.topic(DLQ))
    dlq.read_until(len(CORRUPT), 30)
    dlq.poll()
    letters = {d["id"]: d for d in dlq.json_values()}  # a re-read after the kill gives the same id
    dlq.close()
    assert Counter(d["reason"]["code"] for d in letters.values()) == {
        "invalid_json": 1,
        "schema_invalid": 1,
        "not_an_object": 1,
    }
    assert all(d["stage"] == "archive" for d in letters.values())
    text = (logs / "archiver-1.log").read_text() + (logs / "archiver-2.log").read_text()
    phones = {json.loads(v)["triage"]["customer"]["phone"] for _, v in f.messages[STATE][:2000]}
    assert not any(p in text for p in phones)


def test_the_archive_matches_what_a_real_worker_publishes(bootstrap, tmp_path):
    url = f"sqlite:///{tmp_path / 'archive.db'}"
    settings = isolated_settings(bootstrap, tmp_path, archive_metrics_port=free_ports(1)[0])
    create_topics(settings)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    events = []
    for i in range(8):
        tid = f"W{i}"
        events.append(received(tid, content="家裡寬帶斷網三天了" if i % 2 else "這個月話費多扣了30元"))
        events.append(lifecycle("ticket.responded", tid, occurred_at="2026-11-23T10:30:00+08:00", agent="A1"))
        if i % 3 == 0:
            events += [
                lifecycle("ticket.resolved", tid, occurred_at="2026-11-23T15:00:00+08:00"),
                lifecycle("ticket.survey_completed", tid, occurred_at="2026-11-23T16:00:00+08:00", score=4),
                lifecycle("ticket.closed", tid, occurred_at="2026-11-23T16:30:00+08:00"),
            ]
    for event in events:
        producer.send(settings.topic(INBOUND), key=event["ticket_id"].encode(), value=encode(event))
    producer.flush()
    with worker_process(settings, tmp_path / "worker.log"):
        accepted = TopicReader(settings, settings.topic(ACCEPTED))
        accepted.read_until(len(events), 60)
        state = TopicReader(settings, settings.topic(STATE))

        def settled() -> bool:
            """Every ticket's state carries its triage and W0 is closed (a ticket's lifecycle
            events can be applied before its triage arrives: stopping then leaves no triage)."""
            state.poll()
            views = {json.loads(r.value)["ticket_id"]: json.loads(r.value) for r in state.records}
            return (
                len(views) == 8 and all(v.get("triage") for v in views.values()) and views["W0"]["status"] == "closed"
            )

        wait_until(settled, 60, "every ticket triaged on tickets.state and W0 closed")
    state.poll()  # whatever the worker published up to its stop
    latest = {json.loads(r.value)["ticket_id"]: json.loads(r.value) for r in state.records}
    state.close()
    accepted.close()
    store = Store.open(url)
    store.migrate()
    proc = start_archiver(settings, url, tmp_path / "archiver.log")
    try:
        wait_until(
            lambda: store.counts()["ticket_events"] == len(events) and store.counts()["tickets"] == 8,
            60,
            "the worker's records archived",
        )
    finally:
        stop_process(proc)
    for tid, view in latest.items():
        row = store.ticket(tid)
        assert row["ticket"]["status"] == view["status"] and row["ticket"]["grade"] == view["triage"]["grade"]
        assert (
            row["ticket"]["category"] == view["triage"]["category"] and row["ticket"]["customer_phone"] == "138****5678"
        )
        assert sorted((s["cycle"], s["stage"]) for s in row["stages"]) == sorted(
            (s["cycle"], s["stage"]) for s in view["stages"]
        )
    assert store.ticket("W0")["ticket"]["satisfaction_score"] == 4
    assert store.counts()["sla_events"] > 0
