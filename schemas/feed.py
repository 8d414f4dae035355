"""The records ticketstream publishes for archive consumers and teams that write their own:
`tickets.state` (compacted, the latest full ticket per key) and the SLA and incident streams.
The history topic `tickets.accepted` carries the inbound envelope (schemas/events.Event).

These models describe the wire format for `schema export`; the producers build the records
(ticketstream/ticketview.py, sla.py, incidents.py) and the archiver reads them defensively, so a
field added later is allowed everywhere (extra="allow").
"""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ticketstream.schemas.events import Grade


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class StateEvent(_Open):
    type: str = Field(description="a lifecycle event type that touches a clock (ticket.responded, ...)")
    at: AwareDatetime = Field(description="when it occurred")
    event_id: str = Field(description="its event id on tickets.accepted")


class StateStage(_Open):
    stage: str = Field(description="response, resolution, investigation, result_feedback or survey")
    cycle: int = Field(ge=1, description="1, then 2 after a reopen, ...")
    started_at: AwareDatetime | None
    due_at: AwareDatetime | None = Field(description="None while paused (waiting for the customer)")
    met_at: AwareDatetime | None
    cancelled_at: AwareDatetime | None
    paused: bool
    fired: list[str] = Field(description="thresholds fired: 'warning:50', 'breach:100', 'escalated:150', 'met'")


class TicketState(_Open):
    """One record of `tickets.state`, keyed by ticket_id: the whole ticket after a change."""

    ticket_id: str
    status: str = Field(description="lifecycle state (DOMAIN §4) after the latest event")
    cycle: int = Field(ge=1)
    grade: Grade | None = Field(description="the grade the SLA clocks run on (None before triage)")
    received_at: AwareDatetime | None
    triage: dict[str, Any] | None = Field(
        description="the latest triage revision (schemas/tickets.TriagedTicket): category, grade, team, queue, "
        "escalation_tier, owner, incident_id, revision, customer (personal data), content, ..."
    )
    events: list[StateEvent]
    stages: list[StateStage]


class SlaEventRecord(_Open):
    """One record of `sla.events`, keyed by ticket_id; `id` = ticket:cycle:stage:kind[:percent]."""

    id: str
    ticket_id: str
    cycle: int
    stage: str
    kind: str = Field(description="warning, breach, met or escalated")
    percent: int | None
    due_at: AwareDatetime | None
    fired_at: AwareDatetime
    retroactive: bool
    grade: Grade
    from_tier: int | None = None
    to_tier: int | None = None
    team: str | None = None


class IncidentRecord(_Open):
    """One record of `incidents`, keyed by incident id; times in epoch seconds."""

    id: str = Field(description="INC:{city}|{category}:{window start}")
    action: str = Field(description="open, update or close")
    city: str
    category: str = Field(description="top-level category")
    count: int
    baseline: float
    first_at: float
    latest_at: float
    opened_at: float
    closed_at: float | None = None


FEED = {"tickets.state": TicketState, "sla.events": SlaEventRecord, "incidents": IncidentRecord}
