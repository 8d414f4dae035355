"""Records ticketstream emits about tickets: the triaged ticket (`tickets.triaged`, `queue.<team>`).

These topics are internal and access-limited: a handling team needs the customer's contact
details to call back, so the customer block is kept whole here (DOMAIN §8: stored only where
needed). Logs, metrics, alerts and dead letters never carry it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import TypeAdapter

from ticketstream.schemas.events import Category, Channel, Customer, Grade, Region, ServiceType, Team


@dataclass(frozen=True, slots=True, kw_only=True)
class TriagedTicket:
    """A classified, graded and routed complaint. `revision` grows with every human override;
    `triage_id` = `{ticket_id}:triage:{revision}` is deterministic, so consumers can deduplicate.

    A plain dataclass, built on the hot path without re-validation (its values are produced by
    the triage core); `TRIAGED` (de)serialises it with pydantic's Rust JSON codec."""

    triage_id: str
    ticket_id: str
    revision: int
    source_event_id: str
    received_at: datetime
    channel: Channel
    customer: Customer
    region: Region
    content: str
    service_type: ServiceType | None = None
    category: Category
    confidence: float
    evidence: list[str]
    manual_triage: bool
    """True when the classifier fell back to `other.general`: a person should look at it."""
    grade: Grade
    content_grade: Grade
    grade_reasons: list[str]
    team: Team
    queue: str
    escalation_tier: int
    notify: list[Team]
    routing_reason: str
    owner: str | None
    """首問負責制: the agent who first accepted the complaint, owner of record for its whole life."""
    repeat_count: int
    """Earlier complaints of this customer in the same top-level category within the window."""
    linked_ticket_id: str | None = None
    incident_id: str | None = None
    overrides: list[str] = field(default_factory=list)
    """People's changes, as readable notes (audit trail)."""
    person_grade: Grade | None = None
    """A grade a person set (ticket.regraded); it holds until a person changes it again."""
    person_team: Team | None = None
    """A team a person assigned (ticket.assigned); escalation may still move the ticket on."""
    model_version: str | None = None
    """The triage model that gave the category and content grade (None: rules only)."""


TRIAGED: TypeAdapter[TriagedTicket] = TypeAdapter(TriagedTicket)
