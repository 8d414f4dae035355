"""Ticket agent: one ticket's state, keyed by ticket id — triage revisions, overrides, SLA clocks.

Inputs (all keyed by ticket id, so co-partitioned with the `tickets` table):
- `tickets.triaged`: triage records. This agent reads its own revisions back and ignores any
  revision it already holds, which also makes re-delivery harmless.
- `tickets.accepted`: lifecycle events. `ticket.reclassified` / `ticket.regraded` /
  `ticket.assigned` make a new triage revision (re-graded, re-routed); an override that arrives
  before its triage waits in the state and is applied, in occurrence order, when the triage
  arrives. Every event that touches a clock goes to the ticket's SLA state (`ticketstream.sla`).
- `sla.ticks`: wake-ups. Faust tables can only be written from stream iteration, so the timer
  that watches the deadline index does not fire thresholds itself: it sends the ticket a tick,
  and this agent fires what is due. A tick for a ticket this worker no longer owns reaches the
  owner, who finds it due or not: ticks are idempotent.

Outputs: `sla.events` (warnings, breaches, met, escalations; deterministic ids), new triage
revisions on `tickets.triaged` and the queues (overrides, escalations), and the full ticket on
the compacted `tickets.state` after every change.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import faust

from schemas.deadletter import Reason, ReasonCode
from schemas.events import AssignedData, Event, EventType, ReclassifiedData, RegradedData, SurveyCompletedData
from schemas.tickets import TRIAGED, TriagedTicket
from streams.deadletters import DeadLetters, source_of
from streams.emit import Emitter
from streams.tables import entries, table
from streams.intake import raw_topic
from streams.triage import TriageOutputs
from ticketstream.alerts import ticket_breach
from ticketstream.deadlines import DeadlineIndex
from ticketstream.overload import counted_as, table_key
from ticketstream.settings import Settings
from ticketstream.sla import SLA_EVENT, SlaEngine, SlaEvent, TicketSla, epoch
from ticketstream.ticketview import ticket_view
from ticketstream.topology import (ACCEPTED, ALERTS, INCIDENT_LINKS, SLA_BY_TEAM, SLA_EVENTS, SLA_TICKS, STATE, TABLE_TICKETS,
                                  TRIAGED as TRIAGED_TOPIC)
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


class TicketAgent:
    """The per-ticket logic of the agent, kept apart from Faust wiring for readability."""

    def __init__(self, app: faust.App, settings: Settings, engine: TriageEngine, sla: SlaEngine,
                 outputs: TriageOutputs, table: Any) -> None:
        self.engine = engine
        self.sla = sla
        self.outputs = outputs
        self.table = table
        self.index = DeadlineIndex()
        self.sla_events = Emitter(app, settings.topic(SLA_EVENTS))
        self.state_topic = Emitter(app, settings.topic(STATE))
        self.by_team = Emitter(app, settings.topic(SLA_BY_TEAM))
        self.alerts = Emitter(app, settings.topic(ALERTS))

    # -- state ----------------------------------------------------------------------------------
    def load(self, ticket_id: str) -> tuple[dict[str, Any], TicketSla, TriagedTicket | None]:
        value = dict(self.table[ticket_id])
        sla = TicketSla.from_dict(value["sla"]) if "sla" in value else TicketSla(ticket_id)
        record = TRIAGED.validate_python(value["triage"]) if value.get("triage") else None
        return value, sla, record

    async def save(self, ticket_id: str, value: dict[str, Any], sla: TicketSla, record: TriagedTicket | None,
                   publish: bool = True) -> None:
        value["sla"] = sla.to_dict()
        if record is not None:
            value["triage"] = TRIAGED.dump_python(record, mode="json")
        timings = self.sla.timings(sla)
        value["next"] = self.sla.next_due(sla, timings)
        old_open, old_risk = value.get("open"), value.get("risk", [])
        bucket = open_bucket(value.get("triage"), sla)
        risky = sla.at_risk_stages() if bucket else []
        if bucket != old_open:
            move_open(old_open, bucket)
        if (bucket, risky) != (old_open, old_risk):
            move_risk(old_open, old_risk, bucket, risky)
        value["open"], value["risk"] = bucket, risky
        self.table[ticket_id] = value
        self.index.schedule(ticket_id, value["next"])
        if publish:
            view = ticket_view(value.get("triage"), sla, self.sla, timings=timings)
            await self.state_topic.send(ticket_id.encode(), json.dumps(view, ensure_ascii=False).encode())

    # -- SLA output -------------------------------------------------------------------------------
    async def emit(self, events: list[SlaEvent], record: TriagedTicket | None,
                   fired: set[str] | frozenset[str] = frozenset()) -> TriagedTicket | None:
        """Publish SLA events (and their alerts, counts, escalations); `fired` is the ticket's
        set of emitted keys, to know whether a met stage had breached (its alert then resolves)."""
        now = time.time()
        team = record.team.value if record else "unrouted"
        for event in events:
            event = replace(event, team=team)
            await self.sla_events.send(event.ticket_id.encode(), SLA_EVENT.dump_json(event))
            metrics.SLA_EVENTS.labels(stage=event.stage, kind=event.kind, grade=event.grade.value, team=team).inc()
            counted = counted_as(event.kind, event.percent)
            if counted is not None:
                await self.by_team.send(table_key(team, event.grade.value, event.stage, counted).encode(), b"1")
            if record is not None and (event.kind == "breach" or (
                    event.kind == "met" and f"{event.cycle}:{event.stage}:breach:100" in fired)):
                alert = ticket_breach(event.ticket_id, event.cycle, event.stage, event.grade.value, team,
                                      record.region.city, record.incident_id,
                                      event.due_at or event.fired_at, event.fired_at if event.kind == "met" else None)
                await self.alerts.send(alert["id"].encode(), json.dumps(alert, ensure_ascii=False).encode())
                metrics.ALERTS.labels(alertname="TicketSlaBreach").inc()
            if not event.retroactive and event.kind != "met":
                metrics.SLA_FIRE_DELAY.observe(max(0.0, now - event.fired_at.timestamp()))
            if event.kind == "met":
                on_time = event.due_at is None or event.fired_at <= event.due_at
                metrics.SLA_COMPLETIONS.labels(stage=event.stage, grade=event.grade.value, team=team,
                                               on_time=str(on_time).lower()).inc()
            if event.kind == "escalated" and record is not None and event.to_tier is not None \
                    and event.to_tier > record.escalation_tier:
                previous = record.team
                record = self.engine.retriage(record, escalation_tier=event.to_tier,
                                              note=f"escalated to tier {event.to_tier}: {event.stage} {event.percent}%")
                await self.outputs.publish(record, previous_team=previous)
        return record

    # -- inputs -----------------------------------------------------------------------------------
    async def on_triage(self, record: TriagedTicket) -> None:
        value, sla, held = self.load(record.ticket_id)
        if held is not None and held.revision >= record.revision:
            return  # our own revision read back, or a re-delivery
        record = await self.settle(value, record)
        await self.save(record.ticket_id, value, sla, await self.clock(sla, record))

    async def settle(self, value: dict[str, Any], record: TriagedTicket) -> TriagedTicket:
        """Apply waiting overrides (oldest first) to `record`, publishing each revision."""
        pending = sorted(value.get("pending", []), key=lambda p: (p["occurred_at"], p["event_id"]))
        applied = set(value.get("applied", []))
        for raw in pending:
            if raw["event_id"] in applied:
                continue
            previous = record.team
            record = apply_override(self.engine, record, Event.model_validate(raw))
            applied.add(raw["event_id"])
            metrics.TRIAGE_OVERRIDES.labels(type=raw["type"]).inc()
            await self.outputs.publish(record, previous_team=previous)
        value["pending"], value["applied"] = [], sorted(applied)
        incident_id = value.get("incident_id")
        if incident_id and record.incident_id != incident_id:
            previous = record.team
            record = self.engine.retriage(record, incident_id=incident_id, note=f"linked to incident {incident_id}")
            metrics.INCIDENT_LINKS.inc()
            await self.outputs.publish(record, previous_team=previous)
        return record

    async def on_link(self, ticket_id: str, incident_id: str) -> None:
        """Link the ticket to a mass incident (at least L2); waits for the triage if needed."""
        value, sla, record = self.load(ticket_id)
        if value.get("incident_id") == incident_id:
            return
        value["incident_id"] = incident_id
        if record is not None:
            record = await self.settle(value, record)
            record = await self.clock(sla, record)
        await self.save(ticket_id, value, sla, record)

    async def clock(self, sla: TicketSla, record: TriagedTicket) -> TriagedTicket:
        """Bring the SLA state in line with the triage (received, or a new grade)."""
        now = time.time()
        if sla.received_at is None:
            events = self.sla.received(sla, epoch(record.received_at), record.grade, now)
        elif sla.grade != record.grade:
            events = self.sla.regrade(sla, record.grade, now)
        else:
            return record
        return await self.emit(events, record, sla.fired) or record

    async def on_lifecycle(self, event: Event, raw: bytes) -> None:
        value, sla, record = self.load(event.ticket_id)
        if event.type in OVERRIDES:
            if event.event_id in value.get("applied", []):
                return
            value["pending"] = [*value.get("pending", []), json.loads(raw)]
            if record is not None:
                record = await self.settle(value, record)
                record = await self.clock(sla, record)
        elif event.type is EventType.ESCALATED and record is not None:
            if event.event_id not in value.get("applied", []):
                value["applied"] = sorted({*value.get("applied", []), event.event_id})
                previous = record.team
                record = self.engine.retriage(record, escalation_tier=min(3, record.escalation_tier + 1),
                                              note=f"escalated to tier {min(3, record.escalation_tier + 1)} by a person")
                await self.outputs.publish(record, previous_team=previous)
        if event.type is EventType.SURVEY_COMPLETED and isinstance(event.data, SurveyCompletedData) \
                and not any(f[2] == event.event_id for f in sla.facts):
            metrics.SATISFACTION.observe(event.data.score)
        if event.type is EventType.CLOSED and not any(f[2] == event.event_id for f in sla.facts):
            metrics.TICKETS_CLOSED.labels(team=record.team.value if record else "unrouted").inc()
        if event.type is not EventType.COMPLAINT_RECEIVED:
            metrics.SLA_APPLY_LATENCY.observe(max(0.0, time.time() - event.occurred_at.timestamp()))
            record = await self.emit(self.sla.fact(sla, event.type.value, epoch(event.occurred_at), event.event_id,
                                                   time.time()), record, sla.fired)
        await self.save(event.ticket_id, value, sla, record)

    async def on_tick(self, ticket_id: str) -> None:
        value, sla, record = self.load(ticket_id)
        if "sla" not in value:
            return
        events = self.sla.advance(sla, time.time())
        record = await self.emit(events, record, sla.fired)
        await self.save(ticket_id, value, sla, record, publish=bool(events))

    def rebuild_index(self) -> int:
        """The deadline index and the open/at-risk gauges from the table (after a rebalance).
        One pass over every ticket of the worker's partitions, so it counts per bucket locally
        and sets each gauge once (a million tickets: see bench_sla.py)."""
        open_counts: Counter[tuple[str, str]] = Counter()
        risk_counts: Counter[tuple[str, str, str]] = Counter()

        def next_due() -> Iterator[tuple[str, float | None]]:
            for ticket_id, value in entries(self.table):
                bucket = value.get("open")
                if bucket:
                    open_counts[bucket[0], bucket[1]] += 1
                    for stage in value.get("risk") or ():
                        risk_counts[bucket[0], bucket[1], stage] += 1
                yield ticket_id, value.get("next")

        self.index.load(next_due())
        metrics.OPEN_TICKETS.clear()
        metrics.AT_RISK.clear()
        for (team, grade), count in open_counts.items():
            metrics.OPEN_TICKETS.labels(team=team, grade=grade).set(count)
        for (team, grade, stage), count in risk_counts.items():
            metrics.AT_RISK.labels(team=team, grade=grade, stage=stage).set(count)
        return len(self.index)


def open_bucket(triage: dict[str, Any] | None, sla: TicketSla) -> list[str] | None:
    """[team, grade] of an open ticket (received, not closed after its last reopen), else None."""
    if sla.received_at is None or triage is None:
        return None
    last_close = max((at for at, kind, _ in sla.facts if kind == EventType.CLOSED), default=None)
    last_reopen = max((at for at, kind, _ in sla.facts if kind == EventType.REOPENED), default=None)
    if last_close is not None and (last_reopen is None or last_reopen < last_close):
        return None
    return [triage["team"], triage["grade"]]


def move_risk(old_bucket: list[str] | None, old: list[str], new_bucket: list[str] | None, new: list[str]) -> None:
    for stage in old if old_bucket else []:
        metrics.AT_RISK.labels(team=old_bucket[0], grade=old_bucket[1], stage=stage).dec()  # type: ignore[index]
    for stage in new if new_bucket else []:
        metrics.AT_RISK.labels(team=new_bucket[0], grade=new_bucket[1], stage=stage).inc()  # type: ignore[index]


def move_open(old: list[str] | None, new: list[str] | None) -> None:
    if old:
        metrics.OPEN_TICKETS.labels(team=old[0], grade=old[1]).dec()
    if new:
        metrics.OPEN_TICKETS.labels(team=new[0], grade=new[1]).inc()


def register(app: faust.App, settings: Settings, engine: TriageEngine, sla: SlaEngine, outputs: TriageOutputs,
             dead_letters: DeadLetters) -> TicketAgent:
    source = raw_topic(app, settings.topic(TRIAGED_TOPIC), settings.topic(ACCEPTED), settings.topic(SLA_TICKS),
                       settings.topic(INCIDENT_LINKS))
    tickets = table(app, settings, TABLE_TICKETS, dict,
                    "per ticket: triage revision, waiting overrides, SLA facts and what has fired")
    agent = TicketAgent(app, settings, engine, sla, outputs, tickets)
    metrics.DEADLINE_INDEX.set_function(lambda: len(agent.index))
    ticks = Emitter(app, settings.topic(SLA_TICKS))
    triaged_topic, ticks_topic = settings.topic(TRIAGED_TOPIC), settings.topic(SLA_TICKS)
    links_topic = settings.topic(INCIDENT_LINKS)

    @app.agent(source, concurrency=1, name="tickets")
    async def ticket_state(stream: Any) -> None:
        async for event in stream.events():
            raw = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
            try:
                topic = event.message.topic
                if topic == ticks_topic:
                    await agent.on_tick(event.key.decode())
                    metrics.TICKET_MESSAGES.labels(source="tick").inc()
                elif topic == links_topic:
                    await agent.on_link(event.key.decode(), json.loads(raw)["incident_id"])
                    metrics.TICKET_MESSAGES.labels(source="incident").inc()
                elif topic == triaged_topic:
                    await agent.on_triage(TRIAGED.validate_json(raw))
                    metrics.TICKET_MESSAGES.labels(source="triage").inc()
                else:
                    await agent.on_lifecycle(Event.model_validate_json(raw), raw)
                    metrics.TICKET_MESSAGES.labels(source="lifecycle").inc()
            except Exception as exc:  # noqa: BLE001 - one bad message must never stop the stream
                log.exception("ticket state failed on %s", source_of(event).model_dump())
                await dead_letters.send(raw, Reason(code=ReasonCode.PROCESSING_ERROR,
                                                    message=f"unexpected {type(exc).__name__} in ticket state"),
                                        source_of(event), "tickets")

    @app.timer(interval=settings.sla_tick_seconds)
    async def wake_due_tickets() -> None:
        """Per worker: tickets of its partitions with a threshold due now get a tick."""
        for ticket_id in agent.index.pop_due(time.time()):
            await ticks.send(ticket_id.encode(), b"")

    @app.on_rebalance_complete.connect
    async def rebuild(sender: Any = None, **kwargs: Any) -> None:
        started = time.monotonic()
        count = agent.rebuild_index()
        log.info("deadline index rebuilt in %.1f s: %d ticket(s) with pending thresholds",
                 time.monotonic() - started, count)

    @app.page("/tickets/{ticket_id}")
    @app.table_route(table=tickets, match_info="ticket_id")
    async def get_ticket(web: Any, request: Any, ticket_id: str) -> Any:
        value = tickets.get(ticket_id)
        if not value or "sla" not in value:
            return web.json({"error": f"no ticket {ticket_id} on this cluster"}, status=404)
        view = ticket_view(value.get("triage"), TicketSla.from_dict(value["sla"]), sla, now=time.time())
        return web.json(view)

    return agent
