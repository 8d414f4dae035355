"""`ticketstream simulate`: send the synthetic traffic of `ticketstream.simulation` to Kafka in real time."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO

from ticketstream.settings import Settings
from ticketstream.simulation import Shares, Simulator
from ticketstream.topology import INBOUND
from ticketstream.workers.publisher import SEND_FAILURES, SENT, make_producer


@dataclass
class SimulationReport:
    sent: Counter[str] = field(default_factory=Counter)
    skipped_after_window: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return sum(self.sent.values())


def run_simulation(
    settings: Settings,
    rate: float,
    duration: float,
    seed: int = 1,
    time_scale: float = 0.002,
    drain: float = 30.0,
    fast: bool = False,
    shares: Shares | None = None,
    incident_city: str | None = None,
    stop: threading.Event | None = None,
    progress: IO[str] | None = None,
    id_prefix: str | None = None,
) -> SimulationReport:
    """Send `rate` complaints/s for `duration` s plus their lifecycle events, for at most
    `drain` s more. `fast` ignores the schedule and sends everything at once (tests, benchmarks)."""
    stop = stop or threading.Event()
    start = datetime.now(UTC)
    # Ticket ids must not repeat across runs: a re-used event id with new content is a conflict.
    sim = Simulator(
        start,
        rate=rate,
        seed=seed,
        time_scale=time_scale,
        shares=shares,
        id_prefix=id_prefix or f"SIM{start:%y%m%d%H%M%S}S{seed}",
    )
    if incident_city:
        sim.inject_incident(incident_city, at=min(10.0, duration / 3), duration=30.0, count=200)
    producer = make_producer(settings)
    topic = settings.topic(INBOUND)
    report = SimulationReport()
    started = time.monotonic()
    last_progress = started

    def failed(_exc: BaseException) -> None:
        report.failed += 1
        SEND_FAILURES.inc()

    try:
        for message in sim.schedule(duration):
            if stop.is_set():
                break
            if message.at > duration + drain:
                report.skipped_after_window += 1
                continue
            if not fast:
                delay = started + message.at - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
            producer.send(topic, key=message.key, value=message.value).add_errback(failed)
            report.sent[message.kind] += 1
            SENT.labels(kind=message.kind).inc()
            now = time.monotonic()
            if progress and now - last_progress >= 5:
                last_progress = now
                print(f"simulate: {report.total} sent ({dict(report.sent)})", file=progress, flush=True)
        producer.flush()
    finally:
        producer.close()
    return report
