"""One ticket's state (工單狀態): what the ticket process remembers between two of its inputs.

Kept in the worker's `tickets` table (one value per ticket, JSON) and in `replay`'s memory. The
serialised form carries `v` (its schema version); a value without it was written by the release
before this one (the same keys, untyped) and still loads, so the table needs no migration (the
release that moved intake into the ticket agent is upgraded by a stop-and-start: README).
The keys `next`, `open` and `risk` stay short and at the top level: the deadline-index rebuild after
a rebalance reads only them, straight from the store (`streams.tables.entries`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ticketstream.schemas.tickets import TRIAGED, TriagedTicket
from ticketstream.sla.engine import TicketSla

STATE_VERSION = 2
"""1: the untyped dict of the first releases (no `v` key); 2: this model."""


class StateVersionError(ValueError):
    """A stored value of a newer release than this one: refuse rather than misread it."""


@dataclass
class TicketState:
    ticket_id: str
    sla: TicketSla
    triage: TriagedTicket | None = None
    """The newest triage revision (None until its complaint is triaged)."""
    pending: list[dict[str, Any]] = field(default_factory=list)
    """People's overrides and escalations (event JSON) that arrived before the triage; applied in
    occurrence order when it comes."""
    applied: set[str] = field(default_factory=set)
    """Ids of overrides and escalations already applied: a re-delivery changes nothing."""
    incident_id: str | None = None
    """The mass incident the ticket is linked to (it may arrive before the triage)."""
    next_due: float | None = None
    """The earliest instant something of this ticket fires (the deadline index's entry)."""
    open_bucket: tuple[str, str] | None = None
    """(team, grade) while the ticket is open: what the open-tickets gauge counts it as."""
    at_risk: list[str] = field(default_factory=list)
    """Stages past the at-risk warning and neither met nor breached (the at-risk gauge)."""
    seen: dict[str, str] = field(default_factory=dict)
    """Intake's fingerprints of the ticket's accepted events (event-id digest -> content digest
    and where it was read: `ticketstream.intake.seen_entry`), for de-duplication. Kept in the
    ticket's one table value so that an inbound event costs one table write, not two; the
    ticket process never reads it, and `replay` (which reads accepted events) leaves it empty."""
    _triage_json: tuple[TriagedTicket, dict[str, Any]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def triage_json(self) -> dict[str, Any] | None:
        """The triage record's JSON form, encoded once per revision: the table value and the
        tickets.state view both carry it, and a loaded state reuses the stored form."""
        if self.triage is None:
            return None
        cached = self._triage_json
        if cached is None or cached[0] is not self.triage:
            cached = self._triage_json = (self.triage, TRIAGED.dump_python(self.triage, mode="json"))
        return cached[1]

    @classmethod
    def new(cls, ticket_id: str) -> TicketState:
        return cls(ticket_id, TicketSla(ticket_id))

    @property
    def is_new(self) -> bool:
        """Nothing has been recorded for the ticket yet."""
        return self.triage is None and self.sla.received_at is None and not self.sla.facts and not self.pending

    def to_value(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "sla": self.sla.to_dict(),
            "triage": self.triage_json(),
            "pending": self.pending,
            "applied": sorted(self.applied),
            "incident_id": self.incident_id,
            "next": self.next_due,
            "open": list(self.open_bucket) if self.open_bucket else None,
            "risk": self.at_risk,
            "seen": self.seen,
        }

    @classmethod
    def from_value(cls, ticket_id: str, value: dict[str, Any] | None) -> TicketState:
        """The state from a stored value (this release's or the previous one's); a missing value
        is a new ticket."""
        if not value:
            return cls.new(ticket_id)
        version = value.get("v", 1)
        if version > STATE_VERSION:
            raise StateVersionError(
                f"ticket {ticket_id}: state version {version} is newer than this release's "
                f"({STATE_VERSION}); run the newer release"
            )
        bucket = value.get("open")
        state = cls(
            ticket_id=ticket_id,
            sla=TicketSla.from_dict(value["sla"]) if value.get("sla") else TicketSla(ticket_id),
            triage=TRIAGED.validate_python(value["triage"]) if value.get("triage") else None,
            pending=list(value.get("pending") or []),
            applied=set(value.get("applied") or []),
            incident_id=value.get("incident_id"),
            next_due=value.get("next"),
            open_bucket=(bucket[0], bucket[1]) if bucket else None,
            at_risk=list(value.get("risk") or []),
            seen=dict(value.get("seen") or {}),
        )
        if state.triage is not None and version == STATE_VERSION:
            state._triage_json = (state.triage, value["triage"])  # this release's own encoding
        return state
