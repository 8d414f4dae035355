"""Ticket agent: the Faust shell around `ticketstream.tickets.process` — load, call, save, send.

Inputs (all keyed by ticket id, so co-partitioned with the `tickets` table):
- `tickets.inbound` and `tickets.keyed`: every inbound event, validated and de-duplicated by
  intake (`streams.intake.Intake`, which forwards it to `tickets.accepted`); an accepted lifecycle
  event from a handling system is applied to its ticket in the same step, and intake's
  fingerprints are saved in the same table value (one write per event). One agent for both
  because they share the key and the partitioning: a round trip through `tickets.accepted`
  would cost every event a second consume, a second validation and a second table write. A new
  complaint is triaged in the same step too (`streams.triage.Triage`, against this worker's copy
  of every customer's history);
- `incidents.links`: tickets to link to a mass incident;
- `sla.ticks`: wake-ups. Faust tables can only be written from stream iteration, so the timer
  that watches the deadline index does not fire thresholds itself: it sends the ticket a tick,
  and this agent fires what is due. A tick for a ticket this worker no longer owns reaches the
  owner, who finds it due or not: ticks are idempotent.

Outputs: intake's (`tickets.accepted`, `tickets.keyed`, `tickets.dlq`), triage's
(`customers.history`, `incidents.by_key`), `sla.events` (deterministic ids), `sla.by_team`
(windowed overload counts), `alerts` (per-ticket breaches), every triage revision on
`tickets.triaged` (not read back) and the team queues, and the full ticket on the compacted
`tickets.state`. What to send is decided by the process; this module
only moves bytes and counts metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from typing import Any

import faust
import orjson

from ticketstream.intake import COMPLAINT_RECEIVED
from ticketstream.schemas.events import Event
from ticketstream.settings import Settings
from ticketstream.sla.deadlines import DeadlineIndex
from ticketstream.sla.engine import SLA_EVENT, SlaKind
from ticketstream.streams import metrics
from ticketstream.streams.deadletters import DeadLetters, failed, guarded
from ticketstream.streams.emit import Emitter
from ticketstream.streams.intake import Intake, raw_topic
from ticketstream.streams.tables import entries, put, table
from ticketstream.streams.triage import Triage, TriageOutputs
from ticketstream.streams.web import bearer_required, owner_route
from ticketstream.tickets.process import Effects, TicketProcess
from ticketstream.tickets.state import TicketState
from ticketstream.tickets.view import ticket_view
from ticketstream.topology import (
    ALERTS,
    INCIDENT_LINKS,
    SLA_BY_TEAM,
    SLA_EVENTS,
    SLA_TICKS,
    STATE,
    TABLE_TICKETS,
)

log = logging.getLogger(__name__)

REBUILD_SLICE = 2_000
"""Tickets the deadline-index rebuild reads between two turns of the event loop (a few ms)."""


class TicketAgent:
    def __init__(
        self, app: faust.App, settings: Settings, process: TicketProcess, outputs: TriageOutputs, table: Any
    ) -> None:
        self.process = process
        self.outputs = outputs
        self.table = table
        self.index = DeadlineIndex()
        self._rebuilds = 0
        self.sla_events = Emitter(app, settings.topic(SLA_EVENTS))
        self.state_topic = Emitter(app, settings.topic(STATE))
        self.by_team = Emitter(app, settings.topic(SLA_BY_TEAM))
        self.alerts = Emitter(app, settings.topic(ALERTS))

    def load(self, ticket_id: str) -> TicketState:
        return TicketState.from_value(ticket_id, self.table.get(ticket_id))

    async def apply(self, state: TicketState, fx: Effects) -> None:
        """Save the state and send what the process produced."""
        key = state.ticket_id.encode()
        if fx.changed:
            await put(self.table, state.ticket_id, state.to_value())
        self.index.schedule(state.ticket_id, state.next_due)
        now = time.time()
        for event in fx.sla_events:
            await self.sla_events.send(key, SLA_EVENT.dump_json(event))
            team = event.team or "unrouted"
            metrics.child(metrics.SLA_EVENTS, event.stage, event.kind.value, event.grade.value, team).inc()
            if not event.retroactive and event.kind is not SlaKind.MET:
                metrics.SLA_FIRE_DELAY.observe(max(0.0, now - event.fired_at.timestamp()))
            if event.kind is SlaKind.MET:
                on_time = event.due_at is None or event.fired_at <= event.due_at
                on_time_label = "true" if on_time else "false"
                metrics.child(metrics.SLA_COMPLETIONS, event.stage, event.grade.value, team, on_time_label).inc()
        for counted in fx.counted:
            await self.by_team.send(counted.encode(), b"1")
        for alert in fx.alerts:
            await self.alerts.send(alert["id"].encode(), json.dumps(alert, ensure_ascii=False).encode())
            metrics.child(metrics.ALERTS, alert["labels"]["alertname"]).inc()
        for revision in fx.revisions:
            as_json = state.triage_json() if revision.record is state.triage else None
            await self.outputs.publish(revision.record, revision.previous_team, as_json=as_json)
            if revision.cause == "incident":
                metrics.INCIDENT_LINKS.inc()
            elif revision.cause != "escalation":
                metrics.child(metrics.TRIAGE_OVERRIDES, revision.cause).inc()
        if fx.view is not None:
            await self.state_topic.send(key, orjson.dumps(fx.view))
        if fx.gauges is not None:
            old_bucket, old_risk, new_bucket, new_risk = fx.gauges
            if old_bucket != new_bucket:
                if old_bucket:
                    metrics.child(metrics.OPEN_TICKETS, *old_bucket).dec()
                if new_bucket:
                    metrics.child(metrics.OPEN_TICKETS, *new_bucket).inc()
            for stage in old_risk if old_bucket else []:
                metrics.child(metrics.AT_RISK, *old_bucket, stage).dec()
            for stage in new_risk if new_bucket else []:
                metrics.child(metrics.AT_RISK, *new_bucket, stage).inc()
        if fx.survey_score is not None:
            metrics.SATISFACTION.observe(fx.survey_score)
        if fx.closed_team is not None:
            metrics.child(metrics.TICKETS_CLOSED, fx.closed_team).inc()

    async def rebuild_index(self) -> int:
        """The deadline index and the open/at-risk gauges from the table (after a rebalance).
        One pass over every ticket of the worker's partitions, so it counts per bucket locally
        and sets each gauge once (a million tickets: see bench_sla.py). The pass yields to the
        event loop every `REBUILD_SLICE` tickets: a million tickets take seconds, during which the
        web port (readiness, metrics, ticket lookups) and the timers must still answer, and any
        consumer run in this loop must still send its heartbeats.
        Tickets the agent schedules meanwhile win over what the pass read (`DeadlineIndex.begin_load`);
        a rebuild overtaken by a newer one (another rebalance) leaves the index to it. The gauges
        are the pass's counts: a ticket that moves bucket meanwhile (rare: the streams resume only
        after the rebuild) counts where the pass read it until the next rebuild."""
        self._rebuilds += 1
        generation = self._rebuilds
        open_counts: Counter[tuple[str, str]] = Counter()
        risk_counts: Counter[tuple[str, str, str]] = Counter()
        pending: dict[str, float] = {}
        self.index.begin_load()
        try:
            for read, (ticket_id, value) in enumerate(entries(self.table), 1):
                bucket = value.get("open")
                if bucket:
                    open_counts[bucket[0], bucket[1]] += 1
                    for stage in value.get("risk") or ():
                        risk_counts[bucket[0], bucket[1], stage] += 1
                at = value.get("next")
                if at is not None:
                    pending[ticket_id] = at
                if read % REBUILD_SLICE == 0:
                    await asyncio.sleep(0)
                    if generation != self._rebuilds:
                        return -1
            self.index.load(pending)
        finally:
            if generation == self._rebuilds:
                self.index.abandon_load()  # after `load` a no-op; else a cancelled pass stops recording
        metrics.clear(metrics.OPEN_TICKETS)
        metrics.clear(metrics.AT_RISK)
        for (team, grade), count in open_counts.items():
            metrics.child(metrics.OPEN_TICKETS, team, grade).set(count)
        for (team, grade, stage), count in risk_counts.items():
            metrics.child(metrics.AT_RISK, team, grade, stage).set(count)
        return len(self.index)


def register(
    app: faust.App,
    settings: Settings,
    process: TicketProcess,
    outputs: TriageOutputs,
    triage: Triage,
    dead_letters: DeadLetters,
) -> TicketAgent:
    intake = Intake(app, settings, dead_letters)
    source = raw_topic(
        app,
        intake.inbound_topic,
        intake.keyed_topic,
        settings.topic(SLA_TICKS),
        settings.topic(INCIDENT_LINKS),
    )
    tickets = table(
        app,
        settings,
        TABLE_TICKETS,
        dict,
        "per ticket: triage revision, waiting overrides, SLA facts and what has fired",
    )
    agent = TicketAgent(app, settings, process, outputs, tickets)
    metrics.DEADLINE_INDEX.set_function(lambda: len(agent.index))
    ticks = Emitter(app, settings.topic(SLA_TICKS))
    ticks_topic = settings.topic(SLA_TICKS)

    async def handle(event: Any, raw: bytes) -> None:
        topic, now = event.message.topic, time.time()
        if topic == intake.inbound_topic or topic == intake.keyed_topic:
            try:
                on_intake = intake.inbound if topic == intake.inbound_topic else intake.rekeyed
                decided = await on_intake(event, raw, agent.load)
            except Exception as exc:  # noqa: BLE001 - intake's own failure, dead-lettered as such
                await failed(dead_letters, "intake", event, raw, exc)
                return
            if decided is None:
                return  # rejected (a dead letter), or re-keyed to its home partition
            state, item = decided.state, decided.item
            if not decided.forwarded:
                return  # a duplicate (or a conflict: a dead letter); nothing new to save
            accepted = item.event if item.event is not None else Event.model_validate_json(item.body)
            if item.type == COMPLAINT_RECEIVED:
                fx, what = await triage.complaint(state, accepted, now), "triage"
            else:
                fx, what = process.on_lifecycle(state, accepted, now), "lifecycle"
                if fx.lifecycle_applied:
                    metrics.SLA_APPLY_LATENCY.observe(max(0.0, now - accepted.occurred_at.timestamp()))
            fx.changed = fx.changed or decided.remembered  # the fingerprint is saved with the ticket
        elif topic == ticks_topic:
            state = agent.load(event.key.decode())
            fx, what = process.on_tick(state, now), "tick"
        else:  # incidents.links
            state = agent.load(event.key.decode())
            fx, what = process.on_link(state, json.loads(raw)["incident_id"], now), "incident"
        await agent.apply(state, fx)
        metrics.child(metrics.TICKET_MESSAGES, what).inc()

    @app.agent(source, concurrency=1, name="tickets")
    async def ticket_state(stream: Any) -> None:
        await guarded(stream.events(), dead_letters, "tickets", handle)

    @app.timer(interval=settings.sla_tick_seconds)
    async def wake_due_tickets() -> None:
        """Per worker: tickets of its partitions with a threshold due now get a tick."""
        for ticket_id in agent.index.pop_due(time.time()):
            await ticks.send(ticket_id.encode(), b"")

    @app.on_rebalance_complete.connect
    async def rebuild(sender: Any = None, **kwargs: Any) -> None:
        started = time.monotonic()
        count = await agent.rebuild_index()
        if count < 0:
            return  # overtaken by the rebuild of a newer rebalance
        log.info(
            "deadline index rebuilt in %.1f s: %d ticket(s) with pending thresholds", time.monotonic() - started, count
        )

    @app.page("/tickets/{ticket_id}")
    @bearer_required(settings)  # the record names the customer: never open beyond loopback
    @owner_route(app, tickets, "ticket_id")  # not app.table_route: it hashes the JSON-quoted key
    async def get_ticket(web: Any, request: Any, ticket_id: str) -> Any:
        state = agent.load(ticket_id)
        if state.is_new and state.incident_id is None:  # unknown, or only its complaint's fingerprint so far
            return web.json({"error": f"no ticket {ticket_id} on this cluster"}, status=404)
        triage = state.triage_json()
        return web.json(ticket_view(triage, state.sla, process.sla, now=time.time()))

    return agent
