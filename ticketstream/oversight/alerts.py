"""Every alert the streams raise (per ticket, per incident, per team overload), built in one place.

Each builder returns the `alerts` topic record of a `schemas.alerts.Alert`, so each is validated
before it leaves (ends after it starts, required labels present, sizes bounded, no personal
data). The id is deterministic, so re-delivery and re-sends are harmless; labels carry what
Alertmanager routes, groups and inhibits by (team, grade, stage, city, incident); the summary
says what happened and the `action` annotation what on-call should do about it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ticketstream.schemas.alerts import Alert, AlertStatus, at_least_after

STAGE_ACTIONS = {
    "response": "contact the customer now and record ticket.responded",
    "resolution": "resolve it or escalate it (it escalates by itself at each further 50 % of the target)",
    "investigation": "finish the investigation and record ticket.investigation_completed",
    "result_feedback": "tell the customer the result and record ticket.feedback_sent",
    "survey": "make the return visit (回訪) and record ticket.survey_completed, or close the ticket",
}


def _severity(grade: str) -> str:
    return "critical" if grade in ("L1", "L2") else "warning"


def _when(value: datetime | float) -> datetime:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, (int, float)) else value


def ticket_breach(
    ticket_id: str,
    cycle: int,
    stage: str,
    grade: str,
    team: str,
    city: str,
    incident_id: str | None,
    breached_at: datetime,
    met_at: datetime | None = None,
) -> dict[str, Any]:
    """The per-ticket SLA breach alert: firing at the breach, resolved when the stage is met.

    A stage can be met at its breach instant or, from the way the met time is taken, a moment
    before it; the alert then ends one second after it started (Alertmanager refuses an alert
    that ends before it starts, and refused the whole batch with it)."""
    labels = {
        "alertname": "TicketSlaBreach",
        "ticket": ticket_id,
        "stage": stage,
        "grade": grade,
        "team": team,
        "city": city,
        "severity": _severity(grade),
    }
    if incident_id:
        labels["incident"] = incident_id
    action = STAGE_ACTIONS.get(stage, f"complete the {stage} stage")
    summary = f"{grade} ticket {ticket_id}: {stage} deadline passed (cycle {cycle})"
    if incident_id:
        summary += f"; part of mass incident {incident_id}"
    return Alert(
        id=f"ticket_breach:{ticket_id}:{cycle}:{stage}",
        status=AlertStatus.RESOLVED if met_at else AlertStatus.FIRING,
        labels=labels,
        annotations={"summary": summary, "action": f"{team}: {action}"},
        starts_at=breached_at,
        ends_at=at_least_after(breached_at, met_at),
    ).record()


def mass_incident(
    incident_id: str,
    city: str,
    category: str,
    count: int,
    baseline: float,
    opened_at: float | datetime,
    closed_at: float | datetime | None,
) -> dict[str, Any]:
    """One alert per mass incident: firing while open (and on updates), resolved at the close."""
    start = _when(opened_at)
    return Alert(
        id=f"mass_incident:{incident_id}",
        status=AlertStatus.RESOLVED if closed_at is not None else AlertStatus.FIRING,
        labels={
            "alertname": "MassIncident",
            "incident": incident_id,
            "city": city,
            "category": category,
            "severity": "critical",
        },
        annotations={
            "summary": f"{count} {category} complaints in {city} (usually {baseline:.1f} per window): "
            f"one outage, not {count} problems",
            "action": "find the outage with network operations and publish a notice; the incident's tickets are "
            "linked, raised to at least L2 and their own breach alerts are held back while it is open "
            "(`ticketstream incidents list`)",
        },
        starts_at=start,
        ends_at=at_least_after(start, _when(closed_at)) if closed_at is not None else None,
    ).record()


def team_overload(
    alert_id: str, team: str, grade: str, stage: str, window: str, window_start: datetime, breaches: int, threshold: int
) -> dict[str, Any]:
    """A team's breaches of one grade and stage reached the threshold in one tumbling window."""
    return Alert(
        id=alert_id,
        status=AlertStatus.FIRING,
        labels={
            "alertname": "TeamOverload",
            "team": team,
            "grade": grade,
            "stage": stage,
            "window": window,
            "severity": _severity(grade),
        },
        annotations={
            "summary": f"{team}: {breaches} {stage} breaches of {grade} tickets in {window} (threshold {threshold})",
            "action": f"{team} is overloaded: the team lead moves people to {grade} {stage} work or asks the "
            "complaint desk for help",
        },
        starts_at=window_start,
    ).record()


def to_alertmanager(record: dict[str, Any] | Alert) -> dict[str, Any]:
    """The Alertmanager API v2 form of an alert record (validated on the way)."""
    alert = record if isinstance(record, Alert) else Alert.model_validate(record)
    return alert.to_alertmanager()
