"""Windowed breach tables: `sla.by_team` -> tumbling 5-minute and 1-hour counts -> `alerts`.

The ticket agent re-keys every breach and at-risk warning by (team, grade, stage) onto
`sla.by_team`, so each count lives on one partition. Windowed tables hold aggregates only, never
per-ticket timers (ARCHITECTURE pitfall 3); their changelogs are `compact,delete` with a
retention a little past the window's expiry, so they do not grow forever (pitfall 7).

A message that cannot be decoded or counted is dead-lettered (stage `breaches`) with the reason,
not logged and dropped (Faust would ack it anyway: pitfall 1).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import faust

from ticketstream.oversight import overload
from ticketstream.settings import Settings
from ticketstream.streams import metrics
from ticketstream.streams.deadletters import DeadLetters, guarded
from ticketstream.streams.emit import Emitter
from ticketstream.streams.intake import raw_topic
from ticketstream.streams.tables import table
from ticketstream.topology import ALERTS, SLA_BY_TEAM, TABLE_BREACHES_1H, TABLE_BREACHES_5M

log = logging.getLogger(__name__)


def register(app: faust.App, settings: Settings, dead_letters: DeadLetters | None = None) -> None:
    dead_letters = dead_letters or DeadLetters(app, settings)
    source = raw_topic(app, settings.topic(SLA_BY_TEAM))
    alerts = Emitter(app, settings.topic(ALERTS))
    tables = {
        "5m": table(
            app,
            settings,
            TABLE_BREACHES_5M,
            int,
            "SLA breaches and at-risk warnings per team|grade|stage|kind, 5-minute windows",
        ).tumbling(overload.WINDOWS["5m"], expires=timedelta(hours=2)),
        "1h": table(app, settings, TABLE_BREACHES_1H, int, "the same in 1-hour windows").tumbling(
            overload.WINDOWS["1h"], expires=timedelta(days=2)
        ),
    }
    thresholds = {"5m": settings.overload_breaches_5m, "1h": settings.overload_breaches_1h}

    async def handle(event: Any, raw: bytes) -> None:
        key = event.key.decode()
        team, grade, stage, counted = overload.parse_key(key)
        for window, counts in tables.items():
            counts[key] += 1
            if counted != "breach":
                continue
            count = counts[key].current()
            window_start = counts.get_timestamp(event) // overload.WINDOWS[window] * overload.WINDOWS[window]
            alert = overload.overload(team, grade, stage, window, window_start, count, thresholds[window])
            if alert is not None:
                metrics.ALERTS.labels(alertname="TeamOverload").inc()
                await alerts.send(alert.id.encode(), json.dumps(alert.as_alert(), ensure_ascii=False).encode())

    @app.agent(source, concurrency=1, name="breaches")
    async def count_breaches(stream: Any) -> None:
        await guarded(stream.events(), dead_letters, "breaches", handle)
