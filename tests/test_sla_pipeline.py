"""The SLA engine live on the real broker with a policy in seconds: on time, once per id, and
nothing missed across a worker restart."""

import json
import time
import urllib.error
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from tests.factories import encode, lifecycle, received
from tests.harness import TopicReader, isolated_settings, wait_until, worker_process
from ticketstream.topology import ALERTS, INBOUND, SLA_EVENTS, STATE, TABLE_BREACHES_5M
from ticketstream.workers.topics import create_topics

pytestmark = pytest.mark.integration
POLICY = Path(__file__).parent / "data" / "fast_sla_policy.toml"


def now_iso(offset: float = 0.0) -> str:
    return datetime.fromtimestamp(time.time() + offset, UTC).isoformat()


class Watch:
    """Reads sla.events continuously, noting when each record was seen."""

    def __init__(self, settings):
        self.reader = TopicReader(settings, settings.topic(SLA_EVENTS))
        self.seen_at: list[tuple[float, dict, bytes]] = []

    def poll(self) -> list[dict]:
        before = len(self.reader.records)
        self.reader.poll()
        stamp = time.time()
        for record in self.reader.records[before:]:
            self.seen_at.append((stamp, json.loads(record.value), record.value))
        return [body for _, body, _ in self.seen_at]

    def ids(self) -> set[str]:
        return {body["id"] for body in self.poll()}


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_warnings_breaches_met_and_escalations_on_time_and_once(bootstrap, tmp_path: Path, store: str):
    settings = isolated_settings(bootstrap, tmp_path, sla_policy=POLICY, sla_tick_seconds=0.1, store=store)
    create_topics(settings)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=0)

    def send(event):
        producer.send(settings.topic(INBOUND), key=event["ticket_id"].encode(), value=encode(event))
        producer.flush()

    watch = Watch(settings)
    with worker_process(settings, tmp_path / "w1.log"):
        start = time.time() + 1.0
        for ticket in ("A", "B", "C"):
            send(received(ticket, occurred_at=datetime.fromtimestamp(start, UTC).isoformat(), content="网速有点慢"))
        wait_until(lambda: "B:1:response:warning:50" in watch.ids(), 30, "the first warning")
        send(lifecycle("ticket.responded", "B", occurred_at=now_iso()))
        send(lifecycle("ticket.waiting_customer", "C", occurred_at=now_iso()))
        wait_until(lambda: "A:1:response:breach:100" in watch.ids(), 30, "A's response breach")
        send(lifecycle("ticket.customer_replied", "C", occurred_at=now_iso()))
        wait_until(lambda: "A:1:resolution:escalated:150" in watch.ids(), 30, "A's second escalation")
    # Worker down past A's last escalation (16 s) and C's deadlines: nothing may be missed.
    time.sleep(0.1)
    stopped_at = time.time()
    with worker_process(settings, tmp_path / "w2.log"):
        wait_until(
            lambda: {"A:1:resolution:escalated:200", "C:1:resolution:breach:100"} <= watch.ids(),
            60,
            "the thresholds due while the worker was down",
        )
        send(lifecycle("ticket.resolved", "A", occurred_at=now_iso()))
        wait_until(lambda: "A:1:resolution:met" in watch.ids(), 30, "A's resolution met")
        # Live lookup on the worker's web port.
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/tickets/B", timeout=5) as resp:
            live = json.loads(resp.read())
        assert live["ticket_id"] == "B" and live["triage"]["category"] == "technical.network_quality"
        resolution = next(st for st in live["stages"] if st["stage"] == "resolution")
        assert resolution["due_at"] and "remaining_seconds" in resolution
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/tickets/NOPE", timeout=5)
        assert missing.value.code == 404
    ids = watch.ids()
    expected_a = {f"A:1:response:{k}" for k in ("warning:50", "warning:75", "warning:90", "breach:100")} | {
        f"A:1:resolution:{k}"
        for k in (
            "warning:50",
            "warning:75",
            "warning:90",
            "breach:100",
            "escalated:100",
            "escalated:150",
            "escalated:200",
            "met",
        )
    }
    assert expected_a <= ids
    assert "B:1:response:met" in ids and "B:1:response:breach:100" not in ids
    assert "C:1:response:breach:100" in ids
    # Each id always with the same content (a restart may repeat an id, never change it).
    by_id: dict[str, set[bytes]] = defaultdict(set)
    for _, body, raw in watch.seen_at:
        by_id[body["id"]].add(raw)
    assert all(len(v) == 1 for v in by_id.values()), {k: v for k, v in by_id.items() if len(v) > 1}
    # On time: while a worker ran, each threshold was published within a second of its instant.
    late = []
    for seen, body, _ in watch.seen_at:
        if body["kind"] == "met" or body["retroactive"]:
            continue
        fired = datetime.fromisoformat(body["fired_at"]).timestamp()
        if fired < stopped_at - 20:  # due while the first worker ran
            delay = seen - fired
            if delay > 1.5:  # the 1 s goal plus this test's polling interval
                late.append((body["id"], round(delay, 2)))
    assert not late, late
    # The C pause moved its response deadline out by the pause.
    c_breach = next(b for _, b, _ in watch.seen_at if b["id"] == "C:1:response:breach:100")
    assert datetime.fromisoformat(c_breach["due_at"]).timestamp() > start + 4
    # The compacted state topic holds the full ticket.
    state = TopicReader(settings, settings.topic(STATE))
    wait_until(
        lambda: (
            state.poll()
            and any(
                json.loads(r.value)["ticket_id"] == "A"
                and any(s["stage"] == "resolution" and s["met_at"] for s in json.loads(r.value)["stages"])
                for r in state.records
            )
        ),
        30,
        "A's final state",
    )
    final = [json.loads(r.value) for r in state.records if r.key == b"A"][-1]
    assert final["triage"]["escalation_tier"] == 3 and final["triage"]["team"] == "management"
    state.close()
    watch.reader.close()


def test_a_team_with_many_breaches_in_a_window_raises_one_overload_alert(bootstrap, tmp_path: Path):
    settings = isolated_settings(bootstrap, tmp_path, sla_policy=POLICY, sla_tick_seconds=0.1, overload_breaches_5m=5)
    create_topics(settings)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=0)
    if time.time() % 300 > 270:  # keep the 8 breaches (due ~4 s from now) inside one 5-minute window
        time.sleep(300 - time.time() % 300 + 1)
    at = now_iso()
    for i in range(8):  # network complaints nobody responds to: 8 response breaches for network_ops
        event = received(f"N{i}", occurred_at=at, content="手机信号差，网速很慢")
        producer.send(settings.topic(INBOUND), key=event["ticket_id"].encode(), value=encode(event))
    producer.flush()
    alerts = TopicReader(settings, settings.topic(ALERTS))
    with worker_process(settings, tmp_path / "w.log"):

        def overloads() -> list[dict]:
            alerts.poll()
            return [
                json.loads(r.value)
                for r in alerts.records
                if json.loads(r.value)["labels"]["alertname"] == "TeamOverload"
                and json.loads(r.value)["labels"]["stage"] == "response"
            ]

        wait_until(overloads, 60, "a team-overload alert")
        watch = Watch(settings)
        wait_until(lambda: sum(1 for i in watch.ids() if i.endswith(":response:breach:100")) == 8, 30, "all breaches")
        alerts.poll()
    response_alerts = overloads()
    assert len(response_alerts) == 1  # 8 breaches pass the 5-minute threshold (5) once; the hour's (50) not
    alert = response_alerts[0]
    assert alert["labels"] == {
        "alertname": "TeamOverload",
        "team": "network_ops",
        "grade": "L3",
        "stage": "response",
        "window": "5m",
        "severity": "warning",
    }
    # Each breached ticket also raised its own alert (which an incident would inhibit).
    tickets = {
        json.loads(r.value)["labels"].get("ticket")
        for r in alerts.records
        if json.loads(r.value)["labels"]["alertname"] == "TicketSlaBreach"
    }
    assert tickets == {f"N{i}" for i in range(8)}
    alerts.close()
    # Counted a batch at a time (streams/breaches.py): the window's changelog ends at all 8
    # breaches in fewer records than breaches (they fall due together, so they batch).
    changelog = TopicReader(settings, f"{settings.app_id}-{TABLE_BREACHES_5M}-changelog")

    def counts() -> list[int]:
        changelog.poll()
        return [
            json.loads(r.value) for r in changelog.records if json.loads(r.key)[0] == "network_ops|L3|response|breach"
        ]

    wait_until(lambda: counts()[-1:] == [8], 30, "the 5-minute count of 8 breaches on the changelog")
    assert len(counts()) < 8
    changelog.consumer.close()
