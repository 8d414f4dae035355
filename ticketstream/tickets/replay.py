"""Replay (回放): the live ticket process, offline, over recorded events on a virtual clock.

Operators ask "what would this policy have done on last month's traffic?". A what-if tool that
disagrees with the live system is worse than none, so replay runs the very `TicketProcess` the
workers run: complaints are triaged with the workers' triage engine (customer history in file
order), then overrides, escalation re-routing, incident links and the SLA clocks follow the same
code. Events are applied in file order; the clock is the latest event time seen; before each
event, everything due up to the clock fires (across all tickets, in time order, through the same
deadline index the workers use); at the end the clock advances to `until` (default: the last
event time).

Input lines are inbound events (the envelope channel and handling systems publish) or incident
links as the incident agent sends them on `incidents.links`: `{"ticket_id": ..., "incident_id": ...}`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from ticketstream.schemas.events import Event, EventType
from ticketstream.sla.deadlines import DeadlineIndex
from ticketstream.sla.engine import SlaEvent, epoch
from ticketstream.tickets.process import Effects, TicketProcess
from ticketstream.tickets.state import TicketState
from ticketstream.triage.history import CustomerHistories


@dataclass
class Replay:
    process: TicketProcess
    tickets: dict[str, TicketState] = field(default_factory=dict)
    histories: CustomerHistories = field(init=False)
    index: DeadlineIndex = field(default_factory=DeadlineIndex)
    clock: float = float("-inf")
    seen: set[str] = field(default_factory=set)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    views: dict[str, dict[str, object]] = field(default_factory=dict)
    """The newest `tickets.state` record of each ticket, as the workers would have published it."""

    def __post_init__(self) -> None:
        self.histories = CustomerHistories(self.process.triage.repeat_window_days)

    def _state(self, ticket_id: str) -> TicketState:
        state = self.tickets.get(ticket_id)
        if state is None:
            state = self.tickets[ticket_id] = TicketState.new(ticket_id)
        return state

    def _done(self, state: TicketState, fx: Effects) -> list[SlaEvent]:
        self.index.schedule(state.ticket_id, state.next_due)
        if fx.view is not None:
            self.views[state.ticket_id] = fx.view
        return fx.sla_events

    def fire_until(self, now: float, strict: bool = False) -> list[SlaEvent]:
        """Fire what is due at `now` (before `now` when `strict`: an event at `now` is applied
        first, so a stage met at the very instant of its threshold is met, not breached)."""
        out: list[SlaEvent] = []
        for ticket_id in self.index.pop_due(now):
            state = self.tickets[ticket_id]
            out.extend(self._done(state, self.process.on_tick(state, now, strict)))
        out.sort(key=lambda e: (e.fired_at, e.id))
        return out

    def apply(self, event: Event) -> list[SlaEvent]:
        self.clock = max(self.clock, epoch(event.occurred_at))
        out = self.fire_until(self.clock, strict=True)
        if event.event_id in self.seen:
            return out
        self.seen.add(event.event_id)
        state = self._state(event.ticket_id)
        if event.type is EventType.COMPLAINT_RECEIVED:
            customer = event.complaint.customer.id
            fx, _, entry = self.process.on_complaint(state, event, self.histories.of(customer), self.clock)
            self.histories.remember(customer, entry)
        else:
            fx = self.process.on_lifecycle(state, event, self.clock)
        return out + self._done(state, fx)

    def link(self, ticket_id: str, incident_id: str) -> list[SlaEvent]:
        """Link a ticket to a mass incident at the current clock."""
        out = self.fire_until(self.clock, strict=True)
        state = self._state(ticket_id)
        return out + self._done(state, self.process.on_link(state, incident_id, self.clock))

    def finish(self, until: datetime | None) -> list[SlaEvent]:
        if until is not None:
            self.clock = max(self.clock, epoch(until))
        return self.fire_until(self.clock)


def replay_lines(lines: Iterable[str], replay: Replay, until: datetime | None = None) -> Iterator[SlaEvent]:
    """SLA events in firing order; invalid lines are recorded in `replay.rejected` and skipped."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            replay.rejected.append((number, f"not JSON ({exc.msg})"))
            continue
        if isinstance(raw, dict) and "type" not in raw and {"ticket_id", "incident_id"} <= raw.keys():
            yield from replay.link(str(raw["ticket_id"]), str(raw["incident_id"]))
            continue
        try:
            event = Event.model_validate(raw)
        except ValidationError as exc:
            replay.rejected.append((number, f"{exc.error_count()} schema error(s)"))
            continue
        yield from replay.apply(event)
    yield from replay.finish(until)
