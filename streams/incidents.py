"""Incident agent: `incidents.by_key` -> `incidents` + `alerts` + `incidents.links`.

Triage (in the ticket agent) re-keys every new complaint by city (its top-level category in the
value, so a category's share of its city can be judged), a city's complaints of a moment in one record
(`streams.incident_feed`); here each city's detection state lives in the
`incident_keys` table and `ticketstream.incidents.detector.Detector` decides.
Counting is by the complaints' own time in minute buckets held in that state, not in a Faust
windowed table: those expire on wall-clock time and judge a late event by its arrival
(ARCHITECTURE pitfall 3), while an outage is about when customers complained.

A timer sends each open incident's key a tick, so the quiet-period close happens inside stream
iteration like every table write. Links go to the ticket agent (`incidents.links`, keyed by
ticket), which records the incident on the ticket and raises it to at least L2.

Messages are taken a batch at a time (`streams.deadletters.in_batches`) and each city's
state is decoded, stepped through its messages in order and saved once per batch, not once per
complaint: in a mass incident one city's key gets most of the traffic, and its state (every
category's minute buckets) is what a complaint cost to decode and encode.

A message that cannot be decoded or handled is dead-lettered (stage `incidents`) with the
reason, never logged and dropped: Faust acks a message whose handler raised (pitfall 1), so the
dead letter is the only trace it would leave.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, NamedTuple

import faust

from ticketstream.incidents.detector import Detector, IncidentRecord, KeyState, Outcome, by_key_record
from ticketstream.oversight.alerts import mass_incident
from ticketstream.settings import Settings
from ticketstream.streams import metrics
from ticketstream.streams.deadletters import DeadLetters, failed, failed_each, in_batches, raw_of
from ticketstream.streams.emit import Emitter
from ticketstream.streams.intake import raw_topic
from ticketstream.streams.tables import processing, put, table
from ticketstream.topology import ALERTS, INCIDENT_LINKS, INCIDENTS, INCIDENTS_BY_KEY, TABLE_INCIDENT_KEYS

log = logging.getLogger(__name__)


class Item(NamedTuple):
    """One complaint (or tick) of an `incidents.by_key` message."""

    event: Any
    """The stream event that carried it."""
    body: dict[str, Any]
    part: int | None
    """Its position in a message of several (its dead letter's id names it), else None."""

    def alone(self, key: str) -> bytes:
        """What a dead letter of it holds: the message itself when it held only this, else a
        record of this complaint alone (encoded only when a dead letter needs it)."""
        return raw_of(self.event) if self.part is None else by_key_record(key, [self.body])[1]


def each_of(body: Any) -> list[dict[str, Any]]:
    """What one `incidents.by_key` record holds, in order: a city's complaints
    (`by_key_record`), or one complaint or tick (a record of the older form, or the quiet timer's)."""
    if not isinstance(body, dict):
        raise ValueError(f"a JSON object was expected, not {type(body).__name__}")
    if "complaints" not in body:
        return [body]
    complaints = body["complaints"]
    if not isinstance(complaints, list) or not all(isinstance(c, dict) for c in complaints):
        raise ValueError("'complaints' must be a list of JSON objects")
    return complaints


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

    def step(state: KeyState, body: dict[str, Any]) -> Outcome:
        if "tick" in body:
            return detector.tick(state, float(body["tick"]))
        return detector.complaint(state, str(body["ticket_id"]), float(body["at"]), body.get("category"))

    def load(key: str, event: Any) -> KeyState:
        """The city's state, read as while `event` (one of its messages) is processed: with the
        RocksDB store a read looks in the partition of the event being processed."""
        with processing(event):
            value = keys[key]
        return KeyState.from_dict(value) if value else KeyState(key)

    async def settle(key: str, state: KeyState, last: Any, stepped: list[tuple[Item, Outcome]]) -> None:
        """Save the city's state (as of `last`, the latest message it took), then send what each
        complaint decided: saved before sent, as for every table here. A send that fails
        dead-letters only the complaint whose decision it was (the state stands)."""
        (open_keys.add if state.incident else open_keys.discard)(key)
        with processing(last):
            await put(keys, key, state.to_dict())
        for item, outcome in stepped:
            try:
                for record in outcome.records:
                    await publish(record)
                for ticket_id, incident_id in outcome.links:
                    await links.send(ticket_id.encode(), json.dumps({"incident_id": incident_id}).encode())
            except Exception as exc:  # noqa: BLE001 - one complaint's outputs, dead-lettered
                await failed(dead_letters, "incidents", item.event, item.alone(key), exc, item.part)

    async def city(key: str, items: list[Item]) -> None:
        """One city's complaints (and ticks) of a batch, in order: its state decoded and saved
        once. If the detector fails on one, nothing of the batch was saved or sent (the state
        decoded is a copy: `KeyState.from_dict`), and the city's complaints are taken again one
        at a time, so only the failing one becomes a dead letter (itself alone, not the record
        of the city's other complaints that carried it)."""
        state = load(key, items[0].event)
        try:
            stepped = [(item, step(state, item.body)) for item in items]
        except Exception:  # noqa: BLE001 - redone complaint by complaint below
            for item in items:
                try:
                    state = load(key, item.event)
                    await settle(key, state, item.event, [(item, step(state, item.body))])
                except Exception as exc:  # noqa: BLE001 - one bad complaint must never stop the stream
                    await failed(dead_letters, "incidents", item.event, item.alone(key), exc, item.part)
            return
        await settle(key, state, items[-1].event, stepped)

    async def detect_batch(events: list[Any]) -> None:
        by_city: dict[str, list[Item]] = {}
        for event in events:
            try:
                key = event.key.decode()
                bodies = each_of(json.loads(raw_of(event)))
                if len(bodies) == 1:
                    items = [Item(event, bodies[0], None)]
                else:
                    items = [Item(event, body, i) for i, body in enumerate(bodies)]
                if items:
                    by_city.setdefault(key, []).extend(items)
            except Exception as exc:  # noqa: BLE001 - one bad message must never stop the stream
                await failed_each(dead_letters, "incidents", [event], exc)
        for key, items in by_city.items():
            try:
                await city(key, items)
            except Exception as exc:  # noqa: BLE001 - its state could not be read or saved: the city's messages
                await failed_each(dead_letters, "incidents", list(dict.fromkeys(item.event for item in items)), exc)

    @app.agent(source, concurrency=1, name="incidents")
    async def detect(stream: Any) -> None:
        await in_batches(stream, detect_batch)

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
