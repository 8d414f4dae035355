"""What the triage and incident benchmarks share: simulated complaints and a timed triage pass."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from schemas.events import Event
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


def triage_rate(engine: TriageEngine, events: list[Event]) -> float:
    """Complaints per second of the pure triage core over `events`, history accumulating."""
    histories: dict[str, list[HistoryEntry]] = {}
    started = time.perf_counter()
    for event in events:
        cid = event.complaint.customer.id
        _, histories[cid] = engine.triage(event, histories.get(cid, []))
    return len(events) / (time.perf_counter() - started)
