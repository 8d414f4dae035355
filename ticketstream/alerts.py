"""Alerts raised by the streams (per ticket, per incident, per team overload) in one shape.

Every record on the `alerts` topic is `{id, status: firing|resolved, labels, annotations,
starts_at, ends_at}`; the id is deterministic, so re-delivery and re-sends are harmless, and
labels carry what Alertmanager routes, groups and inhibits by (team, grade, city, incident).
Labels never carry personal data; a ticket id is an operational reference, not personal data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def ticket_breach(ticket_id: str, cycle: int, stage: str, grade: str, team: str, city: str,
                  incident_id: str | None, breached_at: datetime, met_at: datetime | None = None) -> dict[str, Any]:
    """The per-ticket SLA breach alert: firing at the breach, resolved when the stage is met."""
    labels = {"alertname": "TicketSlaBreach", "ticket": ticket_id, "stage": stage, "grade": grade, "team": team,
              "city": city, "severity": "critical" if grade in ("L1", "L2") else "warning"}
    if incident_id:
        labels["incident"] = incident_id
    return {
        "id": f"ticket_breach:{ticket_id}:{cycle}:{stage}",
        "status": "resolved" if met_at else "firing",
        "labels": labels,
        "annotations": {"summary": f"{grade} ticket {ticket_id}: {stage} deadline passed (cycle {cycle})"},
        "starts_at": breached_at.isoformat(),
        "ends_at": met_at.isoformat() if met_at else None,
    }


def to_alertmanager(alert: dict[str, Any]) -> dict[str, Any]:
    """The Alertmanager API v2 form of an alert record."""
    def iso(value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value).astimezone().isoformat()
        return str(value)

    body: dict[str, Any] = {"labels": {k: str(v) for k, v in alert["labels"].items()},
                            "annotations": {k: str(v) for k, v in alert.get("annotations", {}).items()}}
    if alert.get("starts_at") is not None:
        body["startsAt"] = iso(alert["starts_at"])
    if alert.get("status") == "resolved":
        body["endsAt"] = iso(alert.get("ends_at")) or datetime.now().astimezone().isoformat()
    return body
