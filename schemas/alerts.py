"""The one alert model: every record on the `alerts` topic, whoever builds it, is an `Alert`.

Why one model: the bridge jammed for good when one builder produced an alert that ended before
it started (Alertmanager answers HTTP 400 for the whole batch). So every builder
(`ticketstream.oversight.alerts`) goes through this model, which refuses what Alertmanager would refuse
and what on-call must never see, before anything leaves:

- it ends after it starts, and a resolved alert has an end;
- the labels Alertmanager routes, groups and inhibits by are present for its kind
  (`REQUIRED_LABELS`), label names are Prometheus label names, `severity` is a known one;
- sizes are bounded (ids, label and annotation values, counts), so one alert cannot become a
  request Alertmanager refuses or a notification nobody can read;
- no label or annotation carries a phone number, national ID number or e-mail address
  (DOMAIN §8; a ticket id is an operational reference, not personal data).

The bridge validates every record it reads with this same model (an older or foreign producer
may not have), and dead-letters what fails with the validation message as the reason.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from ticketstream.privacy import looks_personal

MAX_ID = 256
MAX_LABELS = 20
MAX_LABEL_VALUE = 256
MAX_ANNOTATIONS = 10
MAX_ANNOTATION_VALUE = 2048
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


REQUIRED_LABELS: dict[str, frozenset[str]] = {
    "TicketSlaBreach": frozenset({"ticket", "stage", "grade", "team", "city", "severity"}),
    "MassIncident": frozenset({"incident", "city", "category", "severity"}),
    "TeamOverload": frozenset({"team", "grade", "stage", "window", "severity"}),
}
"""What routing, grouping and inhibition in `monitoring/alertmanager.yml` rely on, per alert name.
An alert name not listed here needs only `alertname` and `severity`."""


class Alert(BaseModel):
    """One alert as streams publish it: `{id, status, labels, annotations, starts_at, ends_at}`.

    `id` is deterministic (re-deliveries and re-sends are harmless; a newer record with the same
    id replaces the older one); `labels` identify the alert in Alertmanager."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=MAX_ID)
    status: AlertStatus
    labels: dict[str, str] = Field(max_length=MAX_LABELS)
    annotations: dict[str, str] = Field(default_factory=dict, max_length=MAX_ANNOTATIONS)
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _check(self) -> Alert:
        name = self.labels.get("alertname")
        if not name:
            raise ValueError("the label 'alertname' is required")
        missing = REQUIRED_LABELS.get(name, frozenset({"severity"})) - {k for k, v in self.labels.items() if v}
        if missing:
            raise ValueError(f"{name} needs the label(s) {', '.join(sorted(missing))}")
        if self.labels["severity"] not in set(Severity):
            raise ValueError(f"severity must be one of {', '.join(Severity)}, got {self.labels['severity'][:40]!r}")
        for key, value in self.labels.items():
            if not _LABEL_NAME.match(key):
                raise ValueError(f"label name {key[:40]!r} is not a Prometheus label name")
            if len(value) > MAX_LABEL_VALUE:
                raise ValueError(f"label {key} is {len(value)} characters long (at most {MAX_LABEL_VALUE})")
        for key, value in self.annotations.items():
            if not _LABEL_NAME.match(key):
                raise ValueError(f"annotation name {key[:40]!r} is not a Prometheus label name")
            if len(value) > MAX_ANNOTATION_VALUE:
                raise ValueError(f"annotation {key} is {len(value)} characters long (at most {MAX_ANNOTATION_VALUE})")
        for where, values in (("label", self.labels), ("annotation", self.annotations)):
            for key, value in values.items():
                if looks_personal(value):
                    raise ValueError(f"{where} {key} looks like it carries personal data (a phone, ID or e-mail)")
        if self.status is AlertStatus.RESOLVED and self.ends_at is None:
            raise ValueError("a resolved alert needs ends_at")
        if self.ends_at is not None and self.ends_at <= self.starts_at:
            raise ValueError(
                f"ends_at ({self.ends_at.isoformat()}) must be after starts_at ({self.starts_at.isoformat()})"
            )
        return self

    @property
    def alertname(self) -> str:
        return self.labels["alertname"]

    def record(self) -> dict[str, Any]:
        """The JSON-able record for the `alerts` topic (times as ISO 8601 with their offset)."""
        return self.model_dump(mode="json")

    def to_alertmanager(self) -> dict[str, Any]:
        """The Alertmanager API v2 form (POST /api/v2/alerts). A firing alert has no endsAt:
        Alertmanager keeps it until `resolve_timeout` after the last time it was posted."""
        body: dict[str, Any] = {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": self.starts_at.astimezone(UTC).isoformat(),
        }
        if self.ends_at is not None:
            body["endsAt"] = self.ends_at.astimezone(UTC).isoformat()
        return body


def parse_alert(raw: bytes | str | dict[str, Any]) -> Alert:
    """An `Alert` from a topic record (bytes, text or a parsed dict); raises ValueError
    (pydantic's ValidationError is one) with a readable reason when it is not a valid alert."""
    if isinstance(raw, dict):
        return Alert.model_validate(raw)
    return Alert.model_validate_json(raw)


def at_least_after(start: datetime, end: datetime | None, minimum_seconds: float = 1.0) -> datetime | None:
    """`end`, moved to `minimum_seconds` after `start` if it is not later than that: a stage met
    at (or, by clock skew between stages, a little before) its breach instant still ends after the
    alert started, which Alertmanager requires."""
    if end is None:
        return None
    floor = start.timestamp() + minimum_seconds
    return end if end.timestamp() >= floor else datetime.fromtimestamp(floor, UTC)
