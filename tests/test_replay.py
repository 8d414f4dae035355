"""`ticketstream replay`: the SLA engine offline on a virtual clock, every kind of event."""

import json
import subprocess
import sys
from datetime import datetime

from tests.factories import encode, lifecycle, received
from tests.harness import REPO
from ticketstream.sla.calendar import WorkCalendar
from ticketstream.sla.engine import SlaEngine
from ticketstream.sla.policy import load_policy
from ticketstream.tickets.process import TicketProcess
from ticketstream.tickets.replay import Replay, replay_lines
from ticketstream.triage.engine import TriageEngine

T0 = "2026-11-23T10:00:00+08:00"


def replay(lines, until=None, policy=None):
    engine = Replay(TicketProcess(TriageEngine(), SlaEngine(load_policy(policy), WorkCalendar())))
    return list(
        replay_lines(
            [line.decode() if isinstance(line, bytes) else line for line in lines],
            engine,
            datetime.fromisoformat(until) if until else None,
        )
    ), engine


def ids(events):
    return [e.id for e in events]


def test_complete_life_of_a_ticket_in_order():
    lines = [
        encode(received("A", occurred_at=T0, content="网速有点慢")),
        encode(lifecycle("ticket.responded", "A", occurred_at="2026-11-23T11:00:00+08:00")),
        encode(lifecycle("ticket.assigned", "A", occurred_at="2026-11-23T11:05:00+08:00", team="network_ops")),
        encode(lifecycle("ticket.resolved", "A", occurred_at="2026-11-24T09:00:00+08:00")),
        encode(lifecycle("ticket.feedback_sent", "A", occurred_at="2026-11-24T10:00:00+08:00")),
        encode(lifecycle("ticket.survey_completed", "A", occurred_at="2026-11-25T10:00:00+08:00", score=5)),
        encode(lifecycle("ticket.closed", "A", occurred_at="2026-11-25T10:05:00+08:00")),
    ]
    events, _ = replay(lines, until="2026-12-31T00:00:00+08:00")
    # L3: response 24 h, resolution 48 h (50 % at 11-24 10:00, resolved an hour before).
    assert ids(events) == ["A:1:response:met", "A:1:resolution:met", "A:1:result_feedback:met", "A:1:survey:met"]
    assert all(not e.retroactive for e in events)
    times = [e.fired_at for e in events]
    assert times == sorted(times)


def test_duplicates_change_nothing_and_disorder_counts_each_event_at_its_own_time():
    base = [
        encode(received("B", occurred_at=T0, content="网速有点慢")),
        encode(lifecycle("ticket.waiting_customer", "B", occurred_at="2026-11-23T10:30:00+08:00")),
        encode(lifecycle("ticket.customer_replied", "B", occurred_at="2026-11-23T11:30:00+08:00")),
        encode(lifecycle("ticket.responded", "B", occurred_at="2026-11-23T12:30:00+08:00")),
        encode(lifecycle("ticket.resolved", "B", occurred_at="2026-11-23T20:00:00+08:00")),
    ]
    until = "2026-11-30T00:00:00+08:00"
    a, _ = replay(base, until=until)
    duplicated, _ = replay(base + base[1:4] + [base[0]], until=until)
    assert [(e.id, e.fired_at) for e in duplicated] == [(e.id, e.fired_at) for e in a]
    # Out of order (the reply before the wait, the response before both): while the clock passes
    # no threshold in between, every event still counts at its own time.
    shuffled, engine = replay([base[0], base[3], base[2], base[1], base[4]], until=until)
    assert sorted((e.id, e.fired_at) for e in shuffled) == sorted((e.id, e.fired_at) for e in a)
    assert "B:1:response:met" in ids(a)
    assert engine.seen == {
        f"B:{t}"
        for t in (
            "received",
            "ticket.waiting_customer",
            "ticket.customer_replied",
            "ticket.responded",
            "ticket.resolved",
        )
    }


def test_the_clock_passing_a_deadline_before_a_late_met_event_keeps_the_breach():
    lines = [
        encode(received("E", occurred_at=T0, content="家里断网了")),  # L2: response due 12:00
        encode(lifecycle("ticket.resolved", "E", occurred_at="2026-11-23T13:00:00+08:00")),
        encode(lifecycle("ticket.responded", "E", occurred_at="2026-11-23T11:00:00+08:00")),
    ]  # arrives late
    events, _ = replay(lines)
    assert "E:1:response:breach:100" in ids(events)  # fired when the clock passed 12:00
    met = next(e for e in events if e.id == "E:1:response:met")
    assert met.fired_at == datetime.fromisoformat("2026-11-23T11:00:00+08:00")  # counted at its own time


def test_regrade_reopen_and_escalation():
    lines = [
        encode(received("C", occurred_at=T0, content="网速有点慢")),
        encode(lifecycle("ticket.regraded", "C", occurred_at="2026-11-23T13:00:00+08:00", grade="L1")),
        encode(lifecycle("ticket.resolved", "C", occurred_at="2026-11-23T14:00:00+08:00")),
        encode(lifecycle("ticket.reopened", "C", occurred_at="2026-11-23T15:00:00+08:00")),
        encode(lifecycle("ticket.escalated", "C", occurred_at="2026-11-23T15:01:00+08:00")),
    ]
    events, _ = replay(lines, until="2026-11-28T00:00:00+08:00")
    by_id = {e.id: e for e in events}
    assert by_id["C:1:response:breach:100"].retroactive  # L1 response 2 h had passed at the regrade
    assert "C:1:response:warning:50" not in by_id
    assert by_id["C:1:resolution:met"].cycle == 1
    assert "C:1:survey:breach:100" not in by_id  # cancelled by the reopen
    assert by_id["C:2:resolution:breach:100"].fired_at == datetime.fromisoformat("2026-11-24T15:00:00+08:00")
    assert by_id["C:2:resolution:escalated:100"].to_tier == 1
    # The regrade to L1 opened the investigation (7 working days from the time received): its
    # 50 % falls on Fri 11-27 12:00.
    assert by_id["C:1:investigation:warning:50"].fired_at == datetime.fromisoformat("2026-11-27T12:00:00+08:00")


def test_cli_writes_one_json_line_per_sla_event_with_the_contract_fields(tmp_path):
    policy = tmp_path / "fast.toml"
    policy.write_text(
        'warnings = [50]\n[stages.response]\nunit = "natural_hours"\nstarts = "received"\n'
        'met_by = ["ticket.responded"]\ntargets = { L1 = 1, L2 = 1, L3 = 1, L4 = 1 }\n'
    )
    lines = b"\n".join(
        [
            encode(received("D", occurred_at=T0, content="网速有点慢")),
            b"not json",
            encode(lifecycle("ticket.responded", "D", occurred_at="2026-11-23T12:00:00+08:00")),
        ]
    )
    result = subprocess.run(
        [sys.executable, "-m", "ticketstream.workers.cli", "replay", "-", "--policy", str(policy)],
        cwd=REPO,
        input=lines,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [o["id"] for o in out] == ["D:1:response:warning:50", "D:1:response:breach:100", "D:1:response:met"]
    for o in out:
        assert {"id", "ticket_id", "cycle", "stage", "kind", "percent", "due_at", "fired_at", "retroactive"} <= set(o)
    assert out[0]["fired_at"] == "2026-11-23T10:30:00+08:00" and out[2]["percent"] is None
    assert b"line 2: skipped" in result.stderr
    until = subprocess.run(
        [sys.executable, "-m", "ticketstream.workers.cli", "replay", "-", "--until", "yesterday"],
        cwd=REPO,
        input=b"",
        capture_output=True,
        timeout=60,
    )
    assert until.returncode == 2 and b"--until" in until.stderr
