"""The ticket process (工單處理): everything that happens to one ticket after triage, as pure steps.

One `TicketProcess` serves the live worker (`streams.tickets`: load the state from the table,
call, save, send the effects) and `replay` (the same calls on a virtual clock), so a what-if run
answers exactly as production does. Each input is one method; each takes the ticket's state and
the processing instant `now`, updates the state and returns the `Effects` to publish:

- `on_complaint`: a new complaint (受理): triaged against the customer's history, then applied
  as its first triage record (`on_triage`).
- `on_triage`: a triage record (an old revision, or the same one again, is ignored).
  Overrides that waited for it are applied in occurrence order, then a waiting incident link, then
  the SLA clocks start (or are re-timed for a new grade).
- `on_lifecycle`: an event from a handling system (any but `complaint.received`).
  `ticket.reclassified` / `regraded` / `assigned` make a new triage revision (re-graded, re-routed; DOMAIN §2, §3, §6) and `ticket.escalated`
  climbs one tier; each waits in the state if the triage has not arrived. Every event that touches
  a clock goes to the SLA state (DOMAIN §5).
- `on_link`: the ticket belongs to a mass incident (§7): at least L2, a new revision.
- `on_tick`: the deadline index says something is due: fire it.

SLA events are labelled with the team that owned the ticket when they fired; a `resolution`
escalation re-routes the ticket (tier 1 the team lead, 2 the complaint desk, 3 management).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ticketstream.oversight.alerts import ticket_breach
from ticketstream.oversight.overload import counted_as, table_key
from ticketstream.schemas.events import (
    AssignedData,
    Event,
    EventType,
    ReclassifiedData,
    RegradedData,
    SurveyCompletedData,
    Team,
)
from ticketstream.schemas.tickets import TriagedTicket
from ticketstream.sla.engine import SlaEngine, SlaEvent, SlaKind, epoch
from ticketstream.tickets.state import TicketState
from ticketstream.tickets.view import ticket_view
from ticketstream.triage.engine import HistoryEntry, TriageEngine

WAITING_FOR_TRIAGE = {EventType.RECLASSIFIED, EventType.REGRADED, EventType.ASSIGNED, EventType.ESCALATED}
"""Events that change the triage record: they wait in the state until the triage exists."""
UNROUTED = "unrouted"


@dataclass(frozen=True, slots=True)
class Revision:
    """A new triage revision to publish (`tickets.triaged` and the team queues)."""

    record: TriagedTicket
    previous_team: Team
    cause: str
    """What made it: an override's event type, `incident` or `escalation`."""


@dataclass
class Effects:
    """What one step produced, for the shell to publish (and count in metrics)."""

    sla_events: list[SlaEvent] = field(default_factory=list)
    revisions: list[Revision] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    counted: list[str] = field(default_factory=list)
    """`sla.by_team` keys (team|grade|stage|breach or at_risk) for the windowed overload counts."""
    view: dict[str, Any] | None = None
    """The full ticket for `tickets.state`, when it changed in a way consumers see."""
    changed: bool = False
    """The state must be saved."""
    gauges: tuple[tuple[str, str] | None, list[str], tuple[str, str] | None, list[str]] | None = None
    """(old open bucket, old at-risk stages, new bucket, new stages) when either moved."""
    survey_score: int | None = None
    closed_team: str | None = None
    lifecycle_applied: bool = False


class TicketProcess:
    def __init__(self, triage: TriageEngine, sla: SlaEngine) -> None:
        self.triage = triage
        self.sla = sla

    # -- inputs -----------------------------------------------------------------------------------
    def on_complaint(
        self, state: TicketState, event: Event, history: Sequence[HistoryEntry], now: float
    ) -> tuple[Effects, TriagedTicket, HistoryEntry]:
        """Triage a `complaint.received` against its customer's `history` and apply the record.
        Returns the record and the complaint's history entry, for the caller to remember once the
        step has succeeded (the live worker also sends it to every worker's copy: `streams.triage`)."""
        record, entry = self.triage.triage_entry(event, history)
        return self.on_triage(state, record, now), record, entry

    def on_triage(self, state: TicketState, record: TriagedTicket, now: float) -> Effects:
        fx = Effects()
        if state.triage is not None and state.triage.revision >= record.revision:
            return self._read_again(state, fx)  # a complaint read again after a crash, triaged again
        state.triage = record
        self._settle(state, fx)
        self._clock(state, fx, now)
        return self._finish(state, fx)

    def on_lifecycle(self, state: TicketState, event: Event, now: float) -> Effects:
        fx = Effects()
        if event.type in WAITING_FOR_TRIAGE:
            if event.event_id in state.applied or any(p["event_id"] == event.event_id for p in state.pending):
                return self._read_again(state, fx)
            state.pending.append(event.model_dump(mode="json"))
            if state.triage is not None:
                self._settle(state, fx)
                self._clock(state, fx, now)
        known = any(f[2] == event.event_id for f in state.sla.facts)
        if event.type is EventType.SURVEY_COMPLETED and isinstance(event.data, SurveyCompletedData) and not known:
            fx.survey_score = event.data.score
        if event.type is EventType.CLOSED and not known:
            fx.closed_team = state.triage.team.value if state.triage else UNROUTED
        fx.lifecycle_applied = True
        self._emit(state, fx, self.sla.fact(state.sla, event.type.value, epoch(event.occurred_at), event.event_id, now))
        return self._finish(state, fx)

    def on_link(self, state: TicketState, incident_id: str, now: float) -> Effects:
        fx = Effects()
        if state.incident_id == incident_id:
            return self._read_again(state, fx)  # a link read again after a crash
        state.incident_id = incident_id
        if state.triage is not None:
            self._settle(state, fx)
            self._clock(state, fx, now)
        return self._finish(state, fx)

    def on_tick(self, state: TicketState, now: float, strict: bool = False) -> Effects:
        """Fire what is due at `now` (before it, when `strict`: replay applies an event at `now`
        first, so a stage met at the very instant of its threshold is met, not breached)."""
        fx = Effects()
        if state.is_new:
            return fx
        events = self.sla.advance(state.sla, now, strict)
        if not events:
            # An early or repeated tick: nothing to publish; keep the index entry true.
            due = self.sla.next_due(state.sla)
            fx.changed = due != state.next_due
            state.next_due = due
            return fx
        self._emit(state, fx, events)
        return self._finish(state, fx)

    # -- steps ------------------------------------------------------------------------------------
    def _settle(self, state: TicketState, fx: Effects) -> None:
        """Apply waiting overrides (oldest first), then a waiting incident link."""
        assert state.triage is not None
        pending = [Event.model_validate(raw) for raw in state.pending]
        for event in sorted(pending, key=lambda e: (epoch(e.occurred_at), e.event_id)):
            if event.event_id in state.applied:
                continue
            state.applied.add(event.event_id)
            data = event.data
            agent = getattr(data, "agent", None)
            who = f" by {agent}" if agent else ""
            if isinstance(data, ReclassifiedData):
                self._revise(
                    state, fx, event.type.value, category=data.category, note=f"reclassified {data.category.value}{who}"
                )
            elif isinstance(data, RegradedData):
                self._revise(state, fx, event.type.value, grade=data.grade, note=f"regraded {data.grade.value}{who}")
            elif isinstance(data, AssignedData):
                self._revise(state, fx, event.type.value, team=data.team, note=f"assigned {data.team.value}{who}")
            elif event.type is EventType.ESCALATED:
                tier = min(self.sla.policy.escalation_max_tier, state.triage.escalation_tier + 1)
                self._revise(
                    state,
                    fx,
                    event.type.value,
                    escalation_tier=tier,
                    note=f"escalated to tier {tier}{who or ' by a person'}",
                )
        state.pending = []
        if state.incident_id and state.triage.incident_id != state.incident_id:
            self._revise(
                state, fx, "incident", incident_id=state.incident_id, note=f"linked to incident {state.incident_id}"
            )

    def _revise(self, state: TicketState, fx: Effects, cause: str, **changes: Any) -> None:
        assert state.triage is not None
        previous = state.triage.team
        state.triage = self.triage.retriage(state.triage, **changes)
        fx.revisions.append(Revision(state.triage, previous, cause))

    def _clock(self, state: TicketState, fx: Effects, now: float) -> None:
        """Bring the SLA state in line with the triage (received, or a new grade)."""
        record, sla = state.triage, state.sla
        assert record is not None
        if sla.received_at is None:
            events = self.sla.received(sla, epoch(record.received_at), record.grade, now)
        elif sla.grade != record.grade:
            events = self.sla.regrade(sla, record.grade, now)
        else:
            return
        self._emit(state, fx, events)

    def _emit(self, state: TicketState, fx: Effects, events: list[SlaEvent]) -> None:
        """Label SLA events with the owning team; derive their counts, alerts and escalations."""
        at_risk = self.sla.policy.at_risk_percent
        for event in events:
            record = state.triage
            team = record.team.value if record is not None else UNROUTED
            event = replace(event, team=team)
            fx.sla_events.append(event)
            counted = counted_as(event.kind, event.percent, at_risk)
            if counted is not None:
                fx.counted.append(table_key(team, event.grade.value, event.stage, counted))
            if record is None:
                continue
            breached = f"{event.cycle}:{event.stage}:{SlaKind.BREACH}:100" in state.sla.fired
            if event.kind is SlaKind.BREACH or (event.kind is SlaKind.MET and breached):
                fx.alerts.append(
                    ticket_breach(
                        event.ticket_id,
                        event.cycle,
                        event.stage,
                        event.grade.value,
                        team,
                        record.region.city,
                        record.incident_id,
                        event.due_at or event.fired_at,
                        event.fired_at if event.kind is SlaKind.MET else None,
                    )
                )
            if event.kind is SlaKind.ESCALATED and event.to_tier is not None and event.to_tier > record.escalation_tier:
                self._revise(
                    state,
                    fx,
                    "escalation",
                    escalation_tier=event.to_tier,
                    note=f"escalated to tier {event.to_tier}: {event.stage} {event.percent}%",
                )

    def _read_again(self, state: TicketState, fx: Effects) -> Effects:
        """An input read again after a crash changes nothing, but the ticket's state goes out
        again: its record may not have reached `tickets.state` (the table's write and the record
        are separate batches; a lost batch stops the worker before it commits)."""
        fx.view = ticket_view(state.triage_json(), state.sla, self.sla)
        return fx

    def _finish(self, state: TicketState, fx: Effects) -> Effects:
        """Derive what the rest of the system keeps about the ticket: its next due instant, the
        gauges' buckets and the view for `tickets.state`."""
        sla = state.sla
        timings = self.sla.timings(sla)
        state.next_due = self.sla.next_due(sla, timings)
        bucket = self._open_bucket(state)
        risky = sla.at_risk_stages(self.sla.policy.at_risk_percent) if bucket else []
        if (bucket, risky) != (state.open_bucket, state.at_risk):
            fx.gauges = (state.open_bucket, state.at_risk, bucket, risky)
        state.open_bucket, state.at_risk = bucket, risky
        fx.changed = True
        triage = state.triage_json()
        fx.view = ticket_view(triage, sla, self.sla, timings=timings)
        return fx

    @staticmethod
    def _open_bucket(state: TicketState) -> tuple[str, str] | None:
        """(team, grade) of an open ticket (received, not closed after its last reopen), else None."""
        sla = state.sla
        if sla.received_at is None or state.triage is None:
            return None
        last_close = max((at for at, kind, _ in sla.facts if kind == EventType.CLOSED), default=None)
        last_reopen = max((at for at, kind, _ in sla.facts if kind == EventType.REOPENED), default=None)
        if last_close is not None and (last_reopen is None or last_reopen < last_close):
            return None
        return state.triage.team.value, state.triage.grade.value
