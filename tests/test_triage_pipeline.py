"""Triage on the real broker: 5,000 complaints in the right queues, repeats graded up, regulator
channels at least L2, people's overrides applied, nothing lost."""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer

from tests.factories import encode, lifecycle, received
from tests.harness import REPO, TopicReader, isolated_settings, wait_until, worker_process
from ticketstream.schemas.events import Category, Event, Grade, Team
from ticketstream.simulation import Shares, Simulator
from ticketstream.topology import ACCEPTED, INBOUND, TRIAGED, queue_topic
from ticketstream.triage.engine import TriageEngine
from ticketstream.triage.training import load_examples
from ticketstream.workers.topics import create_topics

pytestmark = pytest.mark.integration
ENGINE = TriageEngine()


class Sender:
    def __init__(self, settings):
        self.topic = settings.topic(INBOUND)
        self.producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=5)

    def send(self, event: dict) -> None:
        self.producer.send(self.topic, key=event["ticket_id"].encode(), value=encode(event))

    def flush(self):
        self.producer.flush()


def latest_by_ticket(records) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for record in records:
        body = json.loads(record.value)
        if body["revision"] >= latest.get(body["ticket_id"], {}).get("revision", 0):
            latest[body["ticket_id"]] = body
    return latest


def test_five_thousand_complaints_are_triaged_routed_and_overridable(bootstrap, tmp_path: Path):
    # 100 complaints a second would make every city a mass incident; this test is about triage.
    settings = isolated_settings(
        bootstrap, tmp_path, incident_policy=Path(__file__).parent / "data" / "no_incident_policy.toml"
    )
    create_topics(settings)
    sim = Simulator(
        datetime.now(UTC) - timedelta(hours=1),
        rate=100,
        seed=21,
        id_prefix="TRI",
        lifecycle=False,
        shares=Shares(malformed=0, duplicate=0, repeat_customer=0),
    )
    complaints = [json.loads(m.value) for m in sim.schedule(60)][:5000]
    assert len(complaints) == 5000
    sender = Sender(settings)
    for event in complaints:
        sender.send(event)
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    regulator = received("REG-1", occurred_at=t0.isoformat(), channel="miit", content="网速有点慢，希望改善")
    sender.send(regulator)
    # Overrides, sent before their triage exists (they must wait for it, not be lost).
    target = complaints[7]["ticket_id"]
    sender.send(
        lifecycle(
            "ticket.reclassified", target, occurred_at=t0.isoformat(), category="business.tariff_billing", agent="A9"
        )
    )
    regraded = complaints[8]["ticket_id"]
    sender.send(lifecycle("ticket.regraded", regraded, occurred_at=t0.isoformat(), grade="L1"))
    sender.flush()
    triaged = TopicReader(settings, settings.topic(TRIAGED))

    def revisions() -> dict[str, set[int]]:
        triaged.poll()
        seen: dict[str, set[int]] = {}
        for record in triaged.records:
            body = json.loads(record.value)
            seen.setdefault(body["ticket_id"], set()).add(body["revision"])
        return seen

    def triaged_at_least(count: int) -> bool:
        return sum(1 for revs in revisions().values() if 1 in revs) >= count

    def newest(ticket_id: str) -> dict:
        """The newest revision of one ticket read so far (reading on first)."""
        triaged.poll()
        return latest_by_ticket(triaged.records).get(ticket_id, {})

    with worker_process(settings, tmp_path / "worker.log"):
        wait_until(lambda: triaged_at_least(5001), 240, "5,001 complaints triaged")
        wait_until(
            lambda: (
                newest(target).get("category") == "business.tariff_billing" and newest(regraded).get("grade") == "L1"
            ),
            240,
            "both early overrides applied",
        )
        # A repeat complainant: three network complaints in ten days, each sent after the last was triaged.
        for i, day in enumerate((0, 4, 9)):
            at = t0 - timedelta(days=10 - day)
            event = received(f"REP-{i}", occurred_at=at.isoformat(), content="家里网速很慢，看视频一直卡")
            event["data"]["customer"]["id"] = "REPEATER"
            sender.send(event)
            sender.flush()
            wait_until(lambda: triaged_at_least(5001 + i + 1), 60, f"repeat complaint {i} triaged")
        # An assignment after triage: the ticket moves to the product team's queue.
        moved = complaints[9]["ticket_id"]
        sender.send(lifecycle("ticket.assigned", moved, occurred_at=datetime.now(UTC).isoformat(), team="product"))
        sender.flush()
        wait_until(lambda: newest(moved).get("team") == "product", 120, "the assignment applied")
    latest = latest_by_ticket(triaged.records)
    # Nothing lost, nothing duplicated: one revision-1 record per complaint.
    firsts = [json.loads(r.value) for r in triaged.records if json.loads(r.value)["revision"] == 1]
    assert len(firsts) == len({f["ticket_id"] for f in firsts}) == 5000 + 1 + 3
    assert {c["ticket_id"] for c in complaints} <= set(latest)
    # Each complaint is classified and graded as the pure engine says (no repeaters in this traffic).
    for event in complaints[:500]:
        expected, _ = ENGINE.triage(Event.model_validate(event), [])
        got = next(f for f in firsts if f["ticket_id"] == event["ticket_id"])
        assert (got["category"], got["grade"], got["team"]) == (
            expected.category.value,
            expected.grade.value,
            expected.team.value,
        )
    # Regulator channel: at least L2, complaint desk.
    assert latest["REG-1"]["grade"] in ("L1", "L2") and latest["REG-1"]["team"] == "complaint_desk"
    # Repeat complaints: the third within 30 days is graded up. (They were received days ago, so
    # their SLA clocks have breached and escalated them: later revisions, same grade.)
    assert [latest[f"REP-{i}"]["grade"] for i in range(3)] == ["L3", "L3", "L2"]
    assert latest["REP-2"]["repeat_count"] == 2
    # Overrides took effect, as new revisions.
    assert latest[target]["category"] == Category.BUSINESS_TARIFF_BILLING.value
    assert latest[target]["team"] == Team.BILLING.value and latest[target]["revision"] >= 2
    assert latest[regraded]["grade"] == Grade.L1.value and latest[regraded]["team"] == Team.COMPLAINT_DESK.value
    assert latest[moved]["team"] == Team.PRODUCT.value
    # Every team queue holds exactly the tickets routed to it.
    for team in Team:
        queue = TopicReader(settings, settings.topic(queue_topic(team)))
        routed = {t for t, body in latest.items() if body["team"] == team.value}

        def in_queue() -> set[str]:
            queue.poll()
            return {
                json.loads(r.value)["ticket_id"] for r in queue.records if json.loads(r.value)["team"] == team.value
            }

        wait_until(lambda: routed <= in_queue(), 30, f"every ticket routed to {team.value} in its queue")
        # A record of another team in this queue is a ticket leaving it after an override.
        movers = {target, regraded, moved, "REP-0", "REP-1", "REP-2"}  # overrides; old complaints escalated
        assert all(
            json.loads(r.value)["team"] == team.value or json.loads(r.value)["ticket_id"] in movers
            for r in queue.records
        )
        queue.close()
    triaged.close()


def test_peoples_corrections_come_out_as_labelled_examples(bootstrap, tmp_path: Path):
    settings = isolated_settings(bootstrap, tmp_path)
    create_topics(settings)
    sender = Sender(settings)
    at = datetime.now(UTC) - timedelta(hours=2)
    sender.send(received("COR-1", occurred_at=at.isoformat(), content="我的账单上多了一项看不懂的费用"))
    sender.send(
        lifecycle(
            "ticket.reclassified",
            "COR-1",
            occurred_at=(at + timedelta(minutes=5)).isoformat(),
            category="service.content",
            agent="A7",
            reason="a promotion, not a billing error",
        )
    )
    sender.send(
        lifecycle(
            "ticket.reclassified",
            "COR-1",
            occurred_at=(at + timedelta(minutes=9)).isoformat(),
            event_id="COR-1:reclassified:2",
            category="business.tariff_billing",
            agent="A8",
        )
    )
    sender.send(lifecycle("ticket.regraded", "COR-1", occurred_at=(at + timedelta(minutes=6)).isoformat(), grade="L2"))
    sender.send(received("COR-2", occurred_at=at.isoformat(), content="請問寬帶移機要幾天？"))
    sender.send(
        lifecycle(
            "ticket.regraded", "COR-2", occurred_at=(at + timedelta(minutes=1)).isoformat(), grade="L4", agent="A9"
        )
    )
    sender.send(received("COR-3", occurred_at=at.isoformat(), content="网速有点慢"))
    sender.flush()
    accepted = TopicReader(settings, settings.topic(ACCEPTED))
    with worker_process(settings, tmp_path / "worker.log"):
        accepted.read_until(7, 120)
    accepted.close()
    out = tmp_path / "corrections.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "ticketstream.workers.cli", "triage", "corrections", "--out", str(out)],
        cwd=REPO,
        env=settings.as_env(),
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"2 corrected ticket(s) written" in result.stderr
    rows = {r["ticket_id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert set(rows) == {"COR-1", "COR-2"}
    assert rows["COR-1"]["content"] == "我的账单上多了一项看不懂的费用"
    assert (rows["COR-1"]["category"], rows["COR-1"]["category_by"], rows["COR-1"]["grade"]) == (
        "business.tariff_billing",
        "A8",
        "L2",
    )
    assert rows["COR-2"]["grade"] == "L4" and "category" not in rows["COR-2"] and rows["COR-2"]["grade_by"] == "A9"
    # What it writes is what `triage train` reads.
    examples = load_examples([out])
    assert {e.category for e in examples} == {Category.BUSINESS_TARIFF_BILLING, None}
    later = subprocess.run(
        [
            sys.executable,
            "-m",
            "ticketstream.workers.cli",
            "triage",
            "corrections",
            "--since",
            (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        ],
        cwd=REPO,
        env=settings.as_env(),
        capture_output=True,
        timeout=120,
    )
    assert later.returncode == 0 and later.stdout == b"" and b"0 corrected ticket(s)" in later.stderr
