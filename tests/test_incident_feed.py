"""Triage's feed to incident detection (streams/incident_feed.py), the records the
incident agent reads (`each_of`) and the flushes every commit waits for (streams/commits.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from ticketstream.intake import dead_letter
from ticketstream.schemas.deadletter import Reason, ReasonCode, Source
from ticketstream.settings import Settings
from ticketstream.streams import incident_feed
from ticketstream.streams.commits import before_commit
from ticketstream.streams.incident_feed import IncidentFeed
from ticketstream.streams.incidents import each_of
from ticketstream.workers.app import create_app


class Sink:
    """Records what the feed hands over; refuses while `fail` is set (a broken producer)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[dict[str, Any]]]] = []
        self.fail = False

    async def send(self, key: bytes, value: bytes) -> None:
        if self.fail:
            raise TimeoutError("producer buffer full")
        self.sent.append((key.decode(), json.loads(value)["complaints"]))


def settings(tmp_path: Path) -> Settings:
    return Settings(bootstrap_servers="127.0.0.1:9", data_dir=tmp_path)


async def add_complaints(feed: IncidentFeed, count: int) -> None:
    """`count` complaints of one city: T0, T1, ... at 0.0, 1.0, ..."""
    for i in range(count):
        await feed.add("广州", "network", f"T{i}", float(i))


def feed_with_sink(tmp_path: Path) -> tuple[IncidentFeed, Sink]:
    feed = IncidentFeed(create_app(settings(tmp_path)), settings(tmp_path))
    sink = Sink()
    feed.emitter = sink  # type: ignore[assignment]
    return feed, sink


def test_a_flush_sends_one_record_per_city_with_its_complaints_in_order(tmp_path: Path):
    feed, sink = feed_with_sink(tmp_path)

    async def run() -> None:
        await feed.add("广州", "network", "T1", 1.0)
        await feed.add("深圳", "billing", "T2", 2.0)
        await feed.add("广州", "billing", "T3", 3.0)
        await feed.flush()
        await feed.flush()  # nothing held: nothing sent

    asyncio.run(run())
    assert sink.sent == [
        (
            "广州",
            [
                {"ticket_id": "T1", "at": 1.0, "category": "network"},
                {"ticket_id": "T3", "at": 3.0, "category": "billing"},
            ],
        ),
        ("深圳", [{"ticket_id": "T2", "at": 2.0, "category": "billing"}]),
    ]
    assert feed.count == 0


def test_what_could_not_be_sent_stays_held_ahead_of_what_came_after(tmp_path: Path):
    feed, sink = feed_with_sink(tmp_path)

    async def run() -> None:
        await feed.add("广州", "network", "T1", 1.0)
        sink.fail = True
        with pytest.raises(TimeoutError):
            await feed.flush()  # as before a commit: the commit is stopped
        await feed.flush_held()  # as the timer does: logged, still held
        await feed.add("广州", "network", "T2", 2.0)
        assert feed.count == 2
        sink.fail = False
        await feed.flush()

    asyncio.run(run())
    assert sink.sent == [
        (
            "广州",
            [
                {"ticket_id": "T1", "at": 1.0, "category": "network"},
                {"ticket_id": "T2", "at": 2.0, "category": "network"},
            ],
        )
    ]


def test_a_full_feed_flushes_without_waiting_for_the_timer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(incident_feed, "MAX_HELD", 3)
    feed, sink = feed_with_sink(tmp_path)

    asyncio.run(add_complaints(feed, 4))
    assert [len(entries) for _, entries in sink.sent] == [3]
    assert feed.count == 1


class Flushes:
    def __init__(self) -> None:
        self.ran: list[str] = []

    async def first(self) -> None:
        self.ran.append("first")

    async def refusing(self) -> None:
        self.ran.append("refusing")
        raise TimeoutError("producer buffer full")


def test_the_consumer_runs_every_registered_flush_before_it_commits(tmp_path: Path):
    app = create_app(settings(tmp_path))
    flushes = Flushes()
    before_commit(app, flushes.first)
    before_commit(app, flushes.refusing)

    async def commit() -> bool:
        # Faust's own commit would need a started consumer: reaching it would fail otherwise.
        return await app.consumer._commit_offsets({})

    with pytest.raises(TimeoutError):  # a flush that fails stops the commit before Faust's part
        asyncio.run(commit())
    assert flushes.ran == ["first", "refusing"]


def test_a_flush_before_a_commit_waits_for_one_under_way_and_sends_what_it_held(tmp_path: Path):
    feed, sink = feed_with_sink(tmp_path)
    gate = asyncio.Event()
    real_send = sink.send

    calls = 0

    async def slow_send(key: bytes, value: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await gate.wait()  # the producer's buffer is full for a moment (the first send only)
        await real_send(key, value)

    sink.send = slow_send  # type: ignore[method-assign]

    async def run() -> list[str]:
        await feed.add("广州", "network", "T1", 1.0)
        timer = asyncio.create_task(feed.flush())  # the timer's flush, waiting on the producer
        await asyncio.sleep(0)
        await feed.add("广州", "network", "T2", 2.0)
        before_commit_flush = asyncio.create_task(feed.flush())
        await asyncio.sleep(0.05)
        assert not before_commit_flush.done()  # it must not report the feed empty while T1 is in flight
        gate.set()
        await asyncio.gather(timer, before_commit_flush)
        return [entry["ticket_id"] for _, entries in sink.sent for entry in entries]

    assert asyncio.run(run()) == ["T1", "T2"]


def test_a_citys_record_holds_at_most_max_per_record_complaints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(incident_feed, "MAX_PER_RECORD", 2)
    feed, sink = feed_with_sink(tmp_path)

    async def run() -> None:
        await add_complaints(feed, 5)
        await feed.flush()

    asyncio.run(run())
    assert [[e["ticket_id"] for e in entries] for _, entries in sink.sent] == [["T0", "T1"], ["T2", "T3"], ["T4"]]


def test_the_incident_agent_reads_a_citys_complaints_one_complaint_and_a_tick():
    complaints = [{"ticket_id": "T1", "at": 1.0, "category": "network"}, {"ticket_id": "T2", "at": 2.0}]
    assert each_of({"complaints": complaints}) == complaints
    assert each_of({"ticket_id": "T1", "at": 1.0}) == [{"ticket_id": "T1", "at": 1.0}]
    assert each_of({"tick": 5.0}) == [{"tick": 5.0}]
    assert each_of({"complaints": []}) == []
    for bad in ([1], "x", {"complaints": "x"}, {"complaints": [1]}):
        with pytest.raises(ValueError):
            each_of(bad)


def test_the_complaints_of_one_record_that_fail_have_dead_letters_of_their_own_ids():
    source = Source(topic="incidents.by_key", partition=3, offset=42)
    reason = Reason(code=ReasonCode.PROCESSING_ERROR, message="unexpected ValueError in incidents")
    ids = {dead_letter(b"{}", reason, source, "incidents", part=part).id for part in (None, 0, 1)}
    assert ids == {
        "incidents:incidents.by_key:3:42",
        "incidents:incidents.by_key:3:42#0",
        "incidents:incidents.by_key:3:42#1",
    }
