"""Ticket agent: one ticket's state, keyed by ticket id, fed by `tickets.triaged` and `tickets.accepted`.

It applies people's overrides to the triage: `ticket.reclassified`, `ticket.regraded` and
`ticket.assigned` produce a new triage revision (re-graded, re-routed) on `tickets.triaged` and
the queues. An override may arrive before the triage it applies to (triage takes an extra hop
through the customer partition); it waits in the ticket's state and is applied, in occurrence
order, as soon as the triage arrives. This agent reads its own revisions back from
`tickets.triaged` and ignores any revision it already holds, which also makes re-delivery harmless.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import faust

from schemas.deadletter import Reason, ReasonCode
from schemas.events import AssignedData, Event, EventType, ReclassifiedData, RegradedData
from schemas.tickets import TRIAGED, TriagedTicket
from streams.deadletters import DeadLetters, source_of
from streams.intake import raw_topic
from streams.triage import TriageOutputs
from ticketstream.settings import Settings
from ticketstream.topology import ACCEPTED, TABLE_TICKETS, TRIAGED as TRIAGED_TOPIC
from ticketstream.triage import TriageEngine
from workers import metrics

log = logging.getLogger(__name__)

OVERRIDES = {EventType.RECLASSIFIED, EventType.REGRADED, EventType.ASSIGNED}


def apply_override(engine: TriageEngine, record: TriagedTicket, event: Event) -> TriagedTicket:
    """The next triage revision after one override event."""
    data = event.data
    who = f" by {data.agent}" if getattr(data, "agent", None) else ""
    if isinstance(data, ReclassifiedData):
        return engine.retriage(record, category=data.category, note=f"reclassified {data.category.value}{who}")
    if isinstance(data, RegradedData):
        return engine.retriage(record, grade=data.grade, note=f"regraded {data.grade.value}{who}")
    if isinstance(data, AssignedData):
        return engine.retriage(record, team=data.team, note=f"assigned {data.team.value}{who}")
    raise ValueError(f"{event.type} is not an override")


def register(app: faust.App, settings: Settings, engine: TriageEngine, outputs: TriageOutputs,
             dead_letters: DeadLetters) -> None:
    source = raw_topic(app, settings.topic(TRIAGED_TOPIC), settings.topic(ACCEPTED))
    tickets = app.Table(TABLE_TICKETS, default=dict, partitions=settings.partitions, key_type=str,
                        help="per ticket: latest triage revision and overrides waiting for it")
    triaged_topic = settings.topic(TRIAGED_TOPIC)

    async def settle(ticket_id: str, state: dict[str, Any], record: TriagedTicket) -> None:
        """Apply waiting overrides (oldest first) to `record`, publish each revision, store the last."""
        pending = sorted(state.get("pending", []), key=lambda p: (p["occurred_at"], p["event_id"]))
        applied = set(state.get("applied", []))
        for raw in pending:
            if raw["event_id"] in applied:
                continue
            previous = record.team
            record = apply_override(engine, record, Event.model_validate(raw))
            applied.add(raw["event_id"])
            metrics.TRIAGE_OVERRIDES.labels(type=raw["type"]).inc()
            await outputs.publish(record, previous_team=previous)
        tickets[ticket_id] = {"triage": json.loads(TRIAGED.dump_json(record)), "pending": [],
                              "applied": sorted(applied)}

    @app.agent(source, concurrency=1, name="tickets")
    async def ticket_state(stream: Any) -> None:
        async for event in stream.events():
            raw = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
            try:
                if event.message.topic == triaged_topic:
                    record = TRIAGED.validate_json(raw)
                    state = dict(tickets[record.ticket_id])
                    held = state.get("triage")
                    if held is not None and held["revision"] >= record.revision:
                        continue  # our own revision read back, or a re-delivery
                    await settle(record.ticket_id, state, record)
                    continue
                lifecycle = Event.model_validate_json(raw)
                if lifecycle.type not in OVERRIDES:
                    continue
                state = dict(tickets[lifecycle.ticket_id])
                if lifecycle.event_id in state.get("applied", []):
                    continue
                state["pending"] = [*state.get("pending", []), json.loads(raw)]
                if state.get("triage") is None:
                    tickets[lifecycle.ticket_id] = state  # wait for the triage
                    continue
                await settle(lifecycle.ticket_id, state, TRIAGED.validate_python(state["triage"]))
            except Exception as exc:  # noqa: BLE001 - one bad message must never stop the stream
                log.exception("ticket state failed on %s", source_of(event).model_dump())
                await dead_letters.send(raw, Reason(code=ReasonCode.PROCESSING_ERROR,
                                                    message=f"unexpected {type(exc).__name__} in ticket state"),
                                        source_of(event), "tickets")
