"""Replay (回放): run the SLA engine offline over recorded events on a virtual clock.

Operators ask "what would this policy have done on last month's traffic?". Events are applied
in file order; the clock is the latest event time seen; before each event, everything due up to
the clock fires (across all tickets, in time order, through the same deadline index the workers
use); at the end the clock advances to `until` (default: the last event time). Complaints are
triaged with the workers' own triage engine to get their grade; people's regrades apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime

from pydantic import ValidationError

from schemas.events import Event, EventType, RegradedData
from ticketstream.deadlines import DeadlineIndex
from ticketstream.sla import SlaEngine, SlaEvent, TicketSla, epoch
from ticketstream.triage import HistoryEntry, TriageEngine


@dataclass
class Replay:
    sla: SlaEngine
    triage: TriageEngine
    tickets: dict[str, TicketSla] = field(default_factory=dict)
    histories: dict[str, list[HistoryEntry]] = field(default_factory=dict)
    index: DeadlineIndex = field(default_factory=DeadlineIndex)
    clock: float = float("-inf")
    seen: set[str] = field(default_factory=set)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    teams: dict[str, str] = field(default_factory=dict)

    def _label(self, events: list[SlaEvent]) -> list[SlaEvent]:
        """SLA events with the team that owned their ticket (from triage, as in the stream)."""
        return [replace(e, team=self.teams.get(e.ticket_id)) for e in events]

    def _state(self, ticket_id: str) -> TicketSla:
        state = self.tickets.get(ticket_id)
        if state is None:
            state = self.tickets[ticket_id] = TicketSla(ticket_id)
        return state

    def fire_until(self, now: float, strict: bool = False) -> list[SlaEvent]:
        """Fire what is due at `now` (before `now` when `strict`: an event at `now` is applied
        first, so a stage met at the very instant of its threshold is met, not breached)."""
        out: list[SlaEvent] = []
        for ticket_id in self.index.pop_due(now):
            state = self.tickets[ticket_id]
            out.extend(self.sla.advance(state, now, strict))
            self.index.schedule(ticket_id, self.sla.next_due(state))
        out.sort(key=lambda e: (e.fired_at, e.id))
        return self._label(out)

    def apply(self, event: Event) -> list[SlaEvent]:
        at = epoch(event.occurred_at)
        self.clock = max(self.clock, at)
        out = self.fire_until(self.clock, strict=True)
        if event.event_id in self.seen:
            return out
        self.seen.add(event.event_id)
        state = self._state(event.ticket_id)
        if event.type is EventType.COMPLAINT_RECEIVED:
            customer = event.complaint.customer.id
            record, self.histories[customer] = self.triage.triage(event, self.histories.get(customer, []))
            self.teams[event.ticket_id] = record.team.value
            out += self._label(self.sla.received(state, at, record.grade, self.clock))
        elif event.type is EventType.REGRADED and isinstance(event.data, RegradedData):
            out += self._label(self.sla.regrade(state, event.data.grade, self.clock))
        else:
            out += self._label(self.sla.fact(state, event.type.value, at, event.event_id, self.clock))
        self.index.schedule(event.ticket_id, self.sla.next_due(state))
        return out

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
            event = Event.model_validate_json(line)
        except ValidationError as exc:
            replay.rejected.append((number, f"{exc.error_count()} schema error(s)"))
            continue
        yield from replay.apply(event)
    yield from replay.finish(until)
