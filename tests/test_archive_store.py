"""The archive store on SQLite and on a real PostgreSQL: migrations, idempotent upserts, the
query commands, the KPI report over a hand-computed fixture, and retention."""

import csv
import io
import json
from datetime import timedelta

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tests.archive_feed import feed
from ticketstream.archive.batch import Batch
from ticketstream.archive.pii import Protector
from ticketstream.archive.rows import ACCEPTED, INCIDENTS, SLA_EVENTS, STATE
from ticketstream.archive.schema import metadata
from ticketstream.archive.store import Store
from ticketstream.workers.cli import main

KEY = Protector.generate_key()


def load(store: Store, messages: dict[str, list[tuple[bytes, bytes]]], protector: Protector | None = None) -> None:
    batch = Batch(protector or Protector("mask"))
    for topic, items in messages.items():
        for offset, (_, value) in enumerate(items):
            batch.add(topic, value, 0, offset)
    assert batch.finish() == []
    store.write(batch)


def test_migrations_create_exactly_the_schema_the_code_uses(archive_url):
    store = Store.open(archive_url)
    assert store.migrate() == "0001"
    assert store.migrate() == "0001"  # idempotent
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_redelivery_and_older_states_change_nothing(archive_url):
    f = feed(150)
    store = Store.open(archive_url)
    store.migrate()
    load(store, f.messages)
    first = store.counts()
    assert (
        first["tickets"] == 150 and first["ticket_events"] == len(f.event_ids) and first["sla_events"] == len(f.sla_ids)
    )
    load(store, f.messages)  # everything again
    # then every ticket's oldest state on its own, as a zombie consumer or a re-created topic would
    oldest = {}
    for key, value in f.messages[STATE]:
        oldest.setdefault(key, value)
    load(store, {STATE: list(oldest.items())})
    assert store.counts() == first
    for tid, final in f.final.items():
        row = store.ticket(tid)
        assert row["ticket"]["status"] == final["status"] and row["ticket"]["event_count"] == len(final["events"])
        assert len(row["stages"]) == len(final["stages"])


def _t(day: int, hour: int, minute: int = 0) -> str:
    return f"2026-03-{day:02d}T{hour:02d}:{minute:02d}:00+08:00"


def _state(
    tid, received, status, cycle, grade, team, category, channel, city, repeat=0, incident=None, events=(), stages=()
):
    return {
        "ticket_id": tid,
        "status": status,
        "cycle": cycle,
        "grade": grade,
        "received_at": received,
        "triage": {
            "ticket_id": tid,
            "revision": 1,
            "grade": grade,
            "content_grade": grade,
            "team": team,
            "category": category,
            "channel": channel,
            "region": {"province": "廣東", "city": city},
            "customer": {"id": f"C-{tid}", "tier": "ordinary", "phone": "13812345678"},
            "content": "投訴",
            "repeat_count": repeat,
            "incident_id": incident,
            "escalation_tier": 0,
            "queue": team,
            "overrides": [],
        },
        "events": [{"type": t, "at": at, "event_id": f"{tid}:{i}"} for i, (t, at) in enumerate(events)],
        "stages": [
            {
                "stage": s,
                "cycle": c,
                "started_at": st,
                "due_at": due,
                "met_at": met,
                "cancelled_at": None,
                "paused": False,
                "fired": fired,
            }
            for s, c, st, due, met, fired in stages
        ],
    }


def hand_fixture() -> dict[str, list[tuple[bytes, bytes]]]:
    """Five tickets whose KPIs are worked out by hand in test_report_gives_the_hand_computed_kpis."""
    t1 = _state(
        "T1",
        _t(2, 10),
        "closed",
        1,
        "L3",
        "billing",
        "business.tariff_billing",
        "hotline",
        "廣州",
        events=[
            ("ticket.responded", _t(2, 11)),
            ("ticket.resolved", _t(2, 20)),
            ("ticket.survey_completed", _t(2, 21)),
            ("ticket.closed", _t(2, 21, 30)),
        ],
        stages=[
            ("response", 1, _t(2, 10), _t(3, 10), _t(2, 11), []),
            ("resolution", 1, _t(2, 10), _t(4, 10), _t(2, 20), ["warning:50"]),
        ],
    )
    t2 = _state(
        "T2",
        _t(2, 11),
        "closed",
        2,
        "L2",
        "network_ops",
        "technical.network_quality",
        "app",
        "深圳",
        repeat=1,
        events=[
            ("ticket.responded", _t(2, 14)),
            ("ticket.resolved", _t(2, 20)),
            ("ticket.reopened", _t(2, 21)),
            ("ticket.resolved", _t(2, 22)),
            ("ticket.survey_completed", _t(2, 22, 30)),
            ("ticket.closed", _t(2, 23)),
        ],
        stages=[
            ("response", 1, _t(2, 11), _t(2, 13), _t(2, 14), ["breach:100", "warning:50"]),
            ("resolution", 1, _t(2, 11), _t(2, 23), _t(2, 20), []),
            ("resolution", 2, _t(2, 21), _t(3, 9), _t(2, 22), []),
        ],
    )
    t3 = _state(
        "T3",
        _t(2, 12),
        "assigned",
        1,
        "L3",
        "billing",
        "business.tariff_billing",
        "hotline",
        "廣州",
        events=[("ticket.responded", _t(2, 12, 30)), ("ticket.assigned", _t(2, 13))],
        stages=[
            ("response", 1, _t(2, 12), _t(3, 12), _t(2, 12, 30), []),
            ("resolution", 1, _t(2, 12), _t(4, 12), None, []),
        ],
    )
    t4 = _state(
        "T4",
        _t(1, 9),
        "assigned",
        1,
        "L4",
        "frontline",
        "service.content",
        "web",
        "廣州",
        events=[("ticket.assigned", _t(1, 10))],
        stages=[("response", 1, _t(1, 9), _t(3, 9), _t(1, 10), [])],
    )
    t5 = _state(
        "T5",
        _t(2, 13),
        "classified",
        1,
        "L1",
        "complaint_desk",
        "other.privacy",
        "miit",
        "佛山",
        incident="INC:佛山|other:1",
        stages=[("response", 1, _t(2, 13), _t(2, 15), None, ["breach:100"])],
    )
    surveys = [
        {
            "event_id": f"{tid}:s",
            "type": "ticket.survey_completed",
            "ticket_id": tid,
            "occurred_at": at,
            "schema_version": 1,
            "data": {"score": score},
        }
        for tid, at, score in (("T1", _t(2, 21), 5), ("T2", _t(2, 22, 30), 3))
    ]
    incident = {
        "id": "INC:佛山|other:1",
        "action": "open",
        "city": "佛山",
        "category": "other",
        "count": 20,
        "baseline": 0.5,
        "first_at": 1772431200.0,
        "latest_at": 1772431500.0,
        "opened_at": 1772431500.0,
    }
    enc = lambda v: (b"k", json.dumps(v, ensure_ascii=False).encode())  # noqa: E731
    return {
        STATE: [enc(t) for t in (t1, t2, t3, t4, t5)],
        ACCEPTED: [enc(s) for s in surveys],
        INCIDENTS: [enc(incident)],
    }


def test_report_gives_the_hand_computed_kpis(archive_url, capsys):
    store = Store.open(archive_url)
    store.migrate()
    load(store, hand_fixture())
    assert (
        main(
            [
                "tickets",
                "report",
                "--db",
                archive_url,
                "--since",
                "2026-03-02",
                "--until",
                "2026-03-03",
                "--format",
                "json",
                "--by",
                "team",
            ]
        )
        == 0
    )
    r = json.loads(capsys.readouterr().out)
    assert r["volume"] == 4  # T1, T2, T3, T5 (T4 came the day before)
    assert r["on_time"]["response"] == {
        "judged": 4,
        "on_time": 2,
        "breached": 2,
        "rate": 0.5,
        "target": 0.95,
        "meets_target": False,
    }  # T2 met late, T5 breached and not met
    assert r["on_time"]["resolution"] == {
        "judged": 3,
        "on_time": 3,
        "breached": 0,
        "rate": 1.0,
        "target": 0.95,
        "meets_target": True,
    }  # T1, T2 twice; T3 still running
    # response: T3 30 min, T1 1 h, T2 3 h -> nearest rank p50 = 1 h, p90 = p99 = 3 h, mean 1.5 h
    assert r["first_response_seconds"] == {
        "count": 3,
        "p50": 3600,
        "p90": 10800,
        "p99": 10800,
        "max": 10800,
        "mean": 5400,
    }
    assert r["resolution_seconds"] == {
        "count": 2,
        "p50": 32400,
        "p90": 36000,
        "p99": 36000,
        "max": 36000,
        "mean": 34200,
    }  # T2 9 h, T1 10 h (first cycle)
    assert r["repeat_rate"] == 0.25 and r["closed_loop_rate"] == 0.5
    assert r["first_handling_completion_rate"] == 0.5  # T1 closed in one cycle, T2 was reopened
    assert r["satisfaction"] == {
        "surveys": 2,
        "satisfied": 1,
        "rate": 0.5,
        "index": 80.0,
        "target": 0.9,
        "meets_target": False,
    }
    assert r["backlog"] == {"billing": {"L3": 1}, "complaint_desk": {"L1": 1}, "frontline": {"L4": 1}}
    assert r["backlog_total"] == 3 and r["breached_tickets"] == 2
    assert r["volume_by"]["category"] == {
        "business.tariff_billing": 2,
        "technical.network_quality": 1,
        "other.privacy": 1,
    }
    assert r["volume_by"]["channel"] == {"hotline": 2, "app": 1, "miit": 1}
    assert r["volume_by"]["region"] == {"廣東/廣州": 2, "廣東/深圳": 1, "廣東/佛山": 1}
    assert r["incidents"] == {"opened": 1, "by_city_category": {"佛山/other": 1}, "linked_tickets": 1}
    assert r["groups"]["billing"]["volume"] == 2 and r["groups"]["billing"]["on_time"]["response"]["rate"] == 1.0
    assert r["groups"]["billing"]["satisfaction"]["rate"] == 1.0 and r["groups"]["network_ops"]["repeat_rate"] == 1.0
    assert r["trend"] == [
        {"day": "2026-03-02", "volume": 4, "on_time": {"response": 0.5, "resolution": 1.0}, "satisfaction_rate": 0.5}
    ]
    assert store.ticket("T2")["ticket"]["satisfaction_score"] == 3

    for fmt, marker in (("text", "on-time rate response"), ("html", "data:image/png;base64,")):
        assert (
            main(
                [
                    "tickets",
                    "report",
                    "--db",
                    archive_url,
                    "--since",
                    "2026-03-02",
                    "--until",
                    "2026-03-03",
                    "--format",
                    fmt,
                ]
            )
            == 0
        )
        out = capsys.readouterr().out
        assert marker in out and "13812345678" not in out
    assert out.count("<img") >= 4 and "src='http" not in out  # self-contained


def test_query_commands(archive_url, capsys, tmp_path, monkeypatch):
    f = feed(120)
    store = Store.open(archive_url)
    store.migrate()
    monkeypatch.setenv("TICKETSTREAM_ARCHIVE_KEY", KEY)
    load(store, f.messages, Protector("encrypt", KEY))
    tid = next(iter(f.final))
    assert main(["tickets", "show", tid, "--db", archive_url]) == 0
    out = capsys.readouterr().out
    assert tid in out and "timeline" in out and "complaint.received" in out
    assert f.final[tid]["triage"]["customer"]["phone"] not in out
    assert main(["tickets", "show", tid, "--db", archive_url, "--reveal", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["ticket"]["customer_phone"] == f.final[tid]["triage"]["customer"]["phone"]
    assert main(["tickets", "show", "NOPE", "--db", archive_url]) == 1

    team = f.final[tid]["triage"]["team"]
    assert main(["tickets", "list", "--db", archive_url, "--team", team, "--format", "jsonl", "--limit", "1000"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["ticket_id"] for r in listed} == {t for t, v in f.final.items() if v["triage"]["team"] == team}
    assert (
        main(["tickets", "list", "--db", archive_url, "--breached", "--category", "technical", "--format", "jsonl"])
        == 0
    )
    assert all(
        json.loads(x)["breaches"] > 0 and json.loads(x)["category"].startswith("technical.")
        for x in capsys.readouterr().out.splitlines()
    )

    out_file = tmp_path / "all.csv"
    assert main(["tickets", "export", "--db", archive_url, "--format", "csv", "--out", str(out_file)]) == 0
    rows = list(csv.DictReader(io.StringIO(out_file.read_text())))
    assert len(rows) == 120 and {r["ticket_id"] for r in rows} == set(f.final)
    assert (
        main(["tickets", "export", "--db", archive_url, "--format", "jsonl", "--since", "2026-03-02T17:30:00+08:00"])
        == 0
    )
    exported = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert exported and all(x["received_at"] >= "2026-03-02T09:30:00+00:00" for x in exported) and len(exported) < 120
    assert main(["tickets", "export", "--db", archive_url, "--format", "html"]) == 2


def test_purge_deletes_exactly_what_is_older(archive_url, capsys):
    f = feed(60)
    store = Store.open(archive_url)
    store.migrate()
    load(store, f.messages)
    received = sorted((store.ticket(t)["ticket"]["received_at"], t) for t in f.final)
    boundary = received[25][0]  # tickets 0..24 are older; 25 (received exactly at the cut-off) stays
    old = {t for at, t in received if at < boundary}
    assert len(old) == 25
    before = store.counts()
    dry = store.purge(boundary, dry_run=True)
    assert dry["tickets"] == 25 and store.counts() == before
    counts = store.purge(boundary)
    assert counts["tickets"] == 25
    assert counts["ticket_events"] == sum(1 for key, _ in f.messages[ACCEPTED] if key.decode() in old)
    assert counts["sla_events"] == sum(1 for key, _ in f.messages[SLA_EVENTS] if key.decode() in old)
    assert store.counts()["tickets"] == 35 and all(store.ticket(t) is None for t in old)
    assert all(store.ticket(t)["ticket"] is not None for at, t in received if at >= boundary)
    assert store.purge(boundary) == {k: 0 for k in counts}  # nothing left to purge
    # anonymise keeps the KPI fields and drops the personal ones
    counts = store.purge(boundary + timedelta(days=1), anonymise=True)
    assert counts["tickets"] == 35
    row = store.ticket(received[-1][1])["ticket"]
    assert (
        row["customer_phone"] is None and row["content"] is None and row["status"] == f.final[received[-1][1]]["status"]
    )
    # the command: a purge with the default 3 years keeps these 2026 tickets... as of 2026
    assert main(["archive", "purge", "--db", archive_url, "--older-than", "100y"]) == 0
    assert "tickets" in capsys.readouterr().out and store.counts()["tickets"] == 35


def test_cli_refuses_an_archive_without_schema(tmp_path, capsys):
    assert main(["tickets", "list", "--db", f"sqlite:///{tmp_path / 'none.db'}"]) == 2
    assert "archive migrate" in capsys.readouterr().err
