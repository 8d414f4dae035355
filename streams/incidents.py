"""Incident agent: `incidents.by_key` -> `incidents` + `alerts` + `incidents.links`.

The triage agent re-keys every new complaint by city (its top-level category in the value, so
a category's share of its city can be judged); here each city's detection state lives in the
`incident_keys` table and `ticketstream.incidents.detector.Detector` decides.
Counting is by the complaints' own time in minute buckets held in that state, not in a Faust
windowed table: those expire on wall-clock time and judge a late event by its arrival
(ARCHITECTURE pitfall 3), while an outage is about when customers complained.

A timer sends each open incident's key a tick, so the quiet-period close happens inside stream
iteration like every table write. Links go to the ticket agent (`incidents.links`, keyed by
ticket), which records the incident on the ticket and raises it to at least L2.

A message that cannot be decoded or handled is dead-lettered (stage `incidents`) with the
reason, never logged and dropped: Faust acks a message whose handler raised (pitfall 1), so the
dead letter is the only trace it would leave.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import faust

from ticketstream.incidents.detector import Detector, IncidentRecord, KeyState
from ticketstream.oversight.alerts import mass_incident
from ticketstream.settings import Settings
from ticketstream.streams import metrics
from ticketstream.streams.deadletters import DeadLetters, guarded
from ticketstream.streams.emit import Emitter
from ticketstream.streams.intake import raw_topic
from ticketstream.streams.tables import put, table
from ticketstream.topology import ALERTS, INCIDENT_LINKS, INCIDENTS, INCIDENTS_BY_KEY, TABLE_INCIDENT_KEYS

log = logging.getLogger(__name__)


def incident_alert(record: IncidentRecord) -> dict[str, Any]:
    """One alert per incident (firing on open and update, resolved on close), grouped by incident."""
    return mass_incident(
        record.id,
        record.city,
        record.category,
        record.count,
        record.baseline,
        record.opened_at,
        record.closed_at if record.action == "close" else None,
    )


def register(app: faust.App, settings: Settings, detector: Detector, dead_letters: DeadLetters | None = None) -> None:
    dead_letters = dead_letters or DeadLetters(app, settings)
    source = raw_topic(app, settings.topic(INCIDENTS_BY_KEY))
    keys = table(app, settings, TABLE_INCIDENT_KEYS, dict, "per city|category: minute buckets, baseline, open incident")
    incidents = Emitter(app, settings.topic(INCIDENTS))
    alerts = Emitter(app, settings.topic(ALERTS))
    links = Emitter(app, settings.topic(INCIDENT_LINKS))
    by_key = Emitter(app, settings.topic(INCIDENTS_BY_KEY))
    open_keys: set[str] = set()

    async def publish(record: IncidentRecord) -> None:
        await incidents.send(record.id.encode(), json.dumps(record.as_dict(), ensure_ascii=False).encode())
        if record.action in ("open", "close"):
            alert = incident_alert(record)
            await alerts.send(alert["id"].encode(), json.dumps(alert, ensure_ascii=False).encode())
            metrics.child(metrics.ALERTS, "MassIncident").inc()
        metrics.child(metrics.INCIDENT_RECORDS, record.action).inc()
        metrics.OPEN_INCIDENTS.set(len(open_keys))

    async def handle(event: Any, raw: bytes) -> None:
        key = event.key.decode()
        body = json.loads(raw)
        state = KeyState.from_dict(keys[key]) if keys[key] else KeyState(key)
        if "tick" in body:
            outcome = detector.tick(state, float(body["tick"]))
        else:
            outcome = detector.complaint(state, str(body["ticket_id"]), float(body["at"]), body.get("category"))
        (open_keys.add if state.incident else open_keys.discard)(key)
        await put(keys, key, state.to_dict())
        for record in outcome.records:
            await publish(record)
        for ticket_id, incident_id in outcome.links:
            await links.send(ticket_id.encode(), json.dumps({"incident_id": incident_id}).encode())

    @app.agent(source, concurrency=1, name="incidents")
    async def detect(stream: Any) -> None:
        await guarded(stream.events(), dead_letters, "incidents", handle)

    @app.timer(interval=min(30.0, detector.policy.step_seconds))
    async def quiet_ticks() -> None:
        now = time.time()
        for key in list(open_keys):
            await by_key.send(key.encode(), json.dumps({"tick": now}).encode())

    @app.on_rebalance_complete.connect
    async def rebuild(sender: Any = None, **kwargs: Any) -> None:
        open_keys.clear()
        open_keys.update(k for k, v in keys.items() if v and v.get("i"))
        metrics.OPEN_INCIDENTS.set(len(open_keys))
