"""Same answers, proven: a few hundred simulated tickets through the live pipeline on the broker
and through `ticketstream replay` on the same event log give the same SLA events, id by id and
content included, and the same final `tickets.state`.

Live, every input is processed when it arrives; replay processes the log on a virtual clock. The
two can only differ where a threshold falls within the pipeline's latency of an event that
changes it (which happened first is then a race live and a fact in replay), so the log is
screened: a ticket with a threshold within a second of one of its own events, an incident link
sent that close to another of its inputs (the two travel different topics), or a threshold
near the end of the run, is left out of the comparison (it is still sent). A retroactive event fires when its
cause is processed, so its `fired_at` is compared within that latency.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer

from tests.harness import REPO, TopicReader, isolated_settings, wait_until, worker_process
from ticketstream.engines import ticket_process
from ticketstream.simulation import Shares, Simulator
from ticketstream.tickets.replay import Replay, replay_lines
from ticketstream.topology import INBOUND, INCIDENT_LINKS, SLA_EVENTS, STATE
from ticketstream.workers.topics import create_topics

pytestmark = pytest.mark.integration
DATA = Path(__file__).parent / "data"
SEND_SECONDS = 95.0
"""Events later than this after the start are not sent: the run's end (`until`)."""


def planned_log(start: datetime) -> list[tuple[float, bytes, bytes]]:
    """(send offset, key, value) of every message: simulator traffic with an hour as two seconds,
    plus people's reclassifications, escalations, regrades to L1 (after the L1 response deadline:
    retroactive) and incident links on some tickets."""
    # No out-of-order sends: the simulator's "out of order" sends an event before it occurs, which
    # a live worker sees at its wall-clock time and replay at the event's time (its virtual clock
    # is the latest event time seen). Late, duplicated and malformed messages stay in.
    sim = Simulator(
        start,
        rate=12,
        seed=77,
        time_scale=2 / 3600,
        id_prefix=f"EQ{int(start.timestamp())}",
        shares=Shares(repeat_customer=0.1, out_of_order=0.0),
    )
    out = [(m.at, m.key, m.value) for m in sim.schedule(25) if m.at <= SEND_SECONDS]
    extra = []
    for i, (at, _key, value) in enumerate(out):
        try:
            body = json.loads(value)
        except ValueError:
            continue  # a deliberately malformed message
        if not isinstance(body, dict) or body.get("type") != "complaint.received" or i % 7 not in (0, 3, 5, 6):
            continue
        tid = body["ticket_id"]
        kind, data, later = {
            0: ("ticket.reclassified", {"category": "business.tariff_billing", "agent": "Q1"}, 2.5),
            3: ("ticket.escalated", {"agent": "Q2"}, 4.0),
            5: ("link", {}, 1.5),
            6: ("ticket.regraded", {"grade": "L1", "agent": "Q3"}, 5.0),
        }[i % 7]
        if kind == "link":
            extra.append(
                (
                    at + later,
                    b"LINK:" + tid.encode(),
                    json.dumps({"ticket_id": tid, "incident_id": f"INC:test|{tid}"}).encode(),
                )
            )
            continue
        when = start + timedelta(seconds=at + later)
        event = {
            "event_id": f"{tid}:{kind}:eq",
            "type": kind,
            "ticket_id": tid,
            "occurred_at": when.isoformat(),
            "schema_version": 1,
            "data": data,
        }
        extra.append((at + later, tid.encode(), json.dumps(event, ensure_ascii=False).encode()))
    return sorted(out + [e for e in extra if e[0] <= SEND_SECONDS], key=lambda m: m[0])


def comparable_tickets(lines: list[str], sent: list[float], settings, until: datetime, window: float = 1.0) -> set[str]:
    """Tickets whose threshold instants (fired, or pending in their final timings) are clear of
    their own events (when they occurred and when they were sent) by `window` seconds and fall
    before the end, by a dry replay."""
    process = ticket_process(settings)
    dry = Replay(process)
    events = list(replay_lines(lines, dry, until + timedelta(hours=1)))
    marks: dict[str, list[float]] = {}
    for e in events:
        if e.kind != "met" and not e.retroactive:
            marks.setdefault(e.ticket_id, []).append(e.fired_at.timestamp())
    for ticket_id, state in dry.tickets.items():
        for timing in process.sla.timings(state.sla):
            marks.setdefault(ticket_id, []).extend(th.at for th in timing.thresholds if th.at is not None)
    times: dict[str, list[float]] = {}
    for line, sent_at in zip(lines, sent, strict=True):
        try:
            body = json.loads(line)
        except ValueError:
            continue
        if isinstance(body, dict) and body.get("ticket_id"):
            times.setdefault(body["ticket_id"], []).append(sent_at)
            if body.get("occurred_at"):
                times[body["ticket_id"]].append(datetime.fromisoformat(body["occurred_at"]).timestamp())
    # An incident link comes on its own topic, a lifecycle event through intake: which of two sent
    # close together is applied first is a race live (it orders the revisions), a fact in replay.
    for line, sent_at in zip(lines, sent, strict=True):
        body = json.loads(line) if line.startswith('{"ticket_id"') else None
        if body and "incident_id" in body:
            marks.setdefault(body["ticket_id"], []).append(sent_at)
            times[body["ticket_id"]].remove(sent_at)
    end = until.timestamp()
    return {
        t
        for t in dry.tickets
        if all(m <= end - 3 and all(abs(m - x) >= window for x in times.get(t, [])) for m in marks.get(t, []))
    }


def test_live_pipeline_and_replay_give_the_same_answers(bootstrap, tmp_path: Path):
    settings = isolated_settings(
        bootstrap,
        tmp_path,
        sla_policy=DATA / "graded_fast_sla_policy.toml",
        incident_policy=DATA / "no_incident_policy.toml",
        sla_tick_seconds=0.1,
        producer_linger_ms=25,  # the races `comparable_tickets` leaves out were sized for short hops
    )
    create_topics(settings)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=2)
    sla_events = TopicReader(settings, settings.topic(SLA_EVENTS))
    states = TopicReader(settings, settings.topic(STATE))
    replay_input: list[str] = []
    sent: list[float] = []
    with worker_process(settings, tmp_path / "worker.log"):
        start = datetime.now(UTC) + timedelta(seconds=3)
        log = planned_log(start)
        for offset, key, value in log:
            delay = start.timestamp() + offset - time.time()
            if delay > 0:
                time.sleep(delay)  # paced sending: live sees each event when it happens
            if key.startswith(b"LINK:"):
                producer.send(
                    settings.topic(INCIDENT_LINKS),
                    key=key[5:],
                    value=json.dumps({"incident_id": json.loads(value)["incident_id"]}).encode(),
                )
            else:
                producer.send(settings.topic(INBOUND), key=key, value=value)
            replay_input.append(value.decode("utf-8", "replace"))
            sent.append(start.timestamp() + offset)
        producer.flush()
        until = start + timedelta(seconds=SEND_SECONDS)
        keep = comparable_tickets(replay_input, sent, settings, until)
        assert len(keep) >= 50, f"only {len(keep)} comparable tickets"
        # Replay the same log, in send order, with the same settings (policy from --config).
        config = tmp_path / "settings.toml"
        config.write_text(f'sla_policy = "{DATA / "graded_fast_sla_policy.toml"}"\n', encoding="utf-8")
        (tmp_path / "log.jsonl").write_text("\n".join(replay_input) + "\n", encoding="utf-8")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "ticketstream.workers.cli",
                "replay",
                str(tmp_path / "log.jsonl"),
                "--config",
                str(config),
                "--until",
                until.isoformat(),
                "--states",
                str(tmp_path / "states.jsonl"),
            ],
            cwd=REPO,
            capture_output=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr.decode()
        replayed = {}
        for line in result.stdout.decode().splitlines():
            body = json.loads(line)
            if body["ticket_id"] in keep:
                replayed[body["id"]] = body
        # Live: wait until every replayed event of the kept tickets has been emitted.
        live: dict[str, dict] = {}

        def caught_up() -> bool:
            sla_events.poll()
            for record in sla_events.records[len(live_seen) :]:
                live_seen.append(record)
                body = json.loads(record.value)
                if body["ticket_id"] in keep:
                    assert body["id"] not in live or live[body["id"]] == body, f"{body['id']} changed content"
                    live[body["id"]] = body
            return set(replayed) <= set(live)

        live_seen: list = []
        try:
            wait_until(caught_up, 60, "the live pipeline's SLA events of the kept tickets")
        except AssertionError as exc:
            missing = sorted(set(replayed) - set(live))
            tickets = {replayed[m]["ticket_id"] for m in missing[:3]}
            theirs = [b for b in live.values() if b["ticket_id"] in tickets]
            raise AssertionError(
                f"{exc}: {len(missing)} missing, e.g. {[replayed[m] for m in missing[:3]]}; "
                f"live has for those tickets {theirs}"
            ) from None
    end = until.timestamp()
    live = {i: b for i, b in live.items() if datetime.fromisoformat(b["fired_at"]).timestamp() <= end}
    assert set(live) == set(replayed), (sorted(set(live) ^ set(replayed)))[:10]
    kinds = {b["kind"] for b in replayed.values()}
    assert {"warning", "breach", "met", "escalated"} <= kinds
    assert any(b["retroactive"] for b in replayed.values()), "no regrade re-timed a clock"
    assert len({b["team"] for b in replayed.values()}) >= 4  # assignments and escalations re-labelled them
    for event_id, want in replayed.items():
        got = live[event_id]
        if want["retroactive"]:
            lag = datetime.fromisoformat(got["fired_at"]) - datetime.fromisoformat(want["fired_at"])
            assert timedelta(0) <= lag < timedelta(seconds=2), (event_id, lag)
            got, want = {**got, "fired_at": None}, {**want, "fired_at": None}
        assert got == want
    # The final tickets.state of every kept ticket is the same record.
    replay_states = {
        json.loads(line)["ticket_id"]: json.loads(line)
        for line in (tmp_path / "states.jsonl").read_text(encoding="utf-8").splitlines()
    }
    states.poll()
    wait_until(
        lambda: states.poll() and keep <= {json.loads(r.value)["ticket_id"] for r in states.records},
        30,
        "every kept ticket in tickets.state",
    )
    live_states = {}
    for record in states.records:
        body = json.loads(record.value)
        live_states[body["ticket_id"]] = body
    differ = [t for t in keep if live_states[t] != replay_states[t]]
    assert not differ, [
        (
            t,
            {
                k: (live_states[t][k], replay_states[t].get(k))
                for k in live_states[t]
                if live_states[t][k] != replay_states[t].get(k)
            },
        )
        for t in differ[:2]
    ]
    sla_events.close()
    states.close()
