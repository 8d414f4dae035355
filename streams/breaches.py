"""Windowed breach tables: `sla.by_team` -> tumbling 5-minute and 1-hour counts -> `alerts`.

The ticket agent re-keys every breach and at-risk warning by (team, grade, stage) onto
`sla.by_team`, so each count lives on one partition. Windowed tables hold aggregates only, never
per-ticket timers (ARCHITECTURE pitfall 3); their changelogs are `compact,delete` with a
retention a little past the window's expiry, so they do not grow forever (pitfall 7).

Counted a batch at a time (`streams.deadletters.in_batches`): one table write, so one
changelog record, per key and window of the batch instead of one per message. A breach storm
(a mass incident, a team that fell behind) is when this agent is busy, and its breaches pile
onto few keys: the aged benchmark (nearly every ticket breaching on arrival) wrote 0.30
changelog records per inbound event to each table, 0.06 now. A team-overload alert comes about
`BATCH_SECONDS` (there) later than per message (plus the previous batch's processing, or the lag under
a backlog).

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
from ticketstream.streams.deadletters import DeadLetters, failed_each, in_batches
from ticketstream.streams.emit import Emitter
from ticketstream.streams.intake import raw_topic
from ticketstream.streams.tables import processing, table
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

    def add(key: str, events: list[Any]) -> list[tuple[overload.OverloadAlert, Any]]:
        """Count one key's messages of a batch into both windows (per window, one write); the
        team-overload alerts whose threshold this batch crossed, each with the message that did."""
        team, grade, stage, counted = overload.parse_key(key)
        crossed = []
        for window, counts in tables.items():
            size = overload.WINDOWS[window]
            by_start: dict[float, list[Any]] = {}
            for event in events:  # a batch may straddle a window's end
                by_start.setdefault(counts.get_timestamp(event) // size * size, []).append(event)
            for window_start, group in by_start.items():
                with processing(group[-1]):  # its partition (the key's) and its window
                    counts[key] += len(group)
                    count = counts[key].current()
                if counted != "breach":
                    continue
                before = count - len(group)
                alert = overload.overload(team, grade, stage, window, window_start, before, count, thresholds[window])
                if alert is not None:
                    crossed.append((alert, group[thresholds[window] - before - 1]))  # the one that reached it
        return crossed

    async def count(events: list[Any]) -> None:
        """Count a batch. Every failure is one message's dead letter, as in `guarded`: a key's
        messages when its count cannot be written, the crossing message when its alert cannot be
        sent (its count stands)."""
        by_key: dict[str, list[Any]] = {}
        for event in events:
            try:
                key = event.key.decode()
                overload.parse_key(key)
            except Exception as exc:  # noqa: BLE001 - one bad message must never stop the stream
                await failed_each(dead_letters, "breaches", [event], exc)
                continue
            by_key.setdefault(key, []).append(event)
        crossed: list[tuple[overload.OverloadAlert, Any]] = []
        for key, keyed in by_key.items():
            try:
                crossed += add(key, keyed)
            except Exception as exc:  # noqa: BLE001 - the key's messages dead-lettered, the batch goes on
                await failed_each(dead_letters, "breaches", keyed, exc)
        for alert, event in crossed:
            try:
                await alerts.send(alert.id.encode(), json.dumps(alert.as_alert(), ensure_ascii=False).encode())
                metrics.child(metrics.ALERTS, "TeamOverload").inc()
            except Exception as exc:  # noqa: BLE001 - as above
                await failed_each(dead_letters, "breaches", [event], exc)

    @app.agent(source, concurrency=1, name="breaches")
    async def count_breaches(stream: Any) -> None:
        await in_batches(stream, count)
