"""What the benchmarks share: simulated complaints, a timed triage pass, and their numbers as JSON
(`--json PATH`, read by report.py)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from ticketstream.schemas.events import Event
from ticketstream.schemas.tickets import TriagedTicket
from ticketstream.simulation import Simulator
from ticketstream.triage.engine import HistoryEntry, TriageEngine


def simulated_complaints(
    count: int, seed: int, rate: float = 100.0, incident: tuple[str, float, float, int] | None = None
) -> list[bytes]:
    """`count` complaint.received payloads (both scripts, all categories; an outage burst of
    `incident` = (city, at, duration, complaints) on top if given)."""
    sim = Simulator(datetime(2026, 11, 23, tzinfo=UTC), rate=rate, seed=seed, lifecycle=False)
    if incident:
        sim.inject_incident(*incident)
    wanted = ("valid", "incident")
    return [m.value for m in sim.schedule(count / rate * 1.2) if m.kind in wanted][:count]


def triage_anew(
    engine: TriageEngine, event: Event, history: list[HistoryEntry]
) -> tuple[TriagedTicket, list[HistoryEntry]]:
    """`engine.triage` with the complaint's text read as new: the engine's memory of what it read
    (`TriageEngine._read`, for a ticket's later revisions) is emptied first, as simulator texts
    repeat across complaints (and across repeats) where real complaints do not."""
    engine._read.cache_clear()
    return engine.triage(event, history)


def triage_rate(engine: TriageEngine, events: list[Event]) -> float:
    """Complaints per second of the pure triage core over `events`, history accumulating, each
    text read as new (`triage_anew`)."""
    histories: dict[str, list[HistoryEntry]] = {}
    started = time.perf_counter()
    for event in events:
        cid = event.complaint.customer.id
        _, histories[cid] = triage_anew(engine, event, histories.get(cid, []))
    return len(events) / (time.perf_counter() - started)


def machine() -> dict[str, object]:
    """Where and when a number was taken: what every figure of the report says next to it."""
    return {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers as JSON to PATH")


def write_json(path: Path | None, benchmark: str, params: dict[str, object], results: dict[str, object]) -> None:
    """The numbers a benchmark printed, with its parameters, command line and machine, for
    tests/benchmarks/report.py (nothing written without --json)."""
    if path is None:
        return
    record = {
        "benchmark": benchmark,
        "command": shlex.join([".venv/bin/python", *sys.argv]),
        "params": params,
        "machine": machine(),
        "results": results,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
