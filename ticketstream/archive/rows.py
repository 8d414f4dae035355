"""Rows of the archive from the records of the four topics it reads (pure: no Kafka, no SQL).

Written defensively, because these topics are written by other code (and other releases):
unknown fields are ignored, a missing optional field is NULL, and a record that cannot be stored
(not JSON, not an object, no id, a time without a UTC offset, an id too long for its column)
raises `RecordError` with a dead-letter reason code, so the archiver sends that one record to
`tickets.dlq` and goes on with the rest.

Every row carries its natural key (ticket id, event id, SLA event id, incident id): the store
upserts on it, so a record delivered twice — after a crash, a rebalance, or a re-read of the
whole topic — changes nothing the second time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from ticketstream.archive.pii import Protector

MAX_ID = 255
"""Longest id the archive stores (column width; the same limit on SQLite and PostgreSQL)."""

STATE, ACCEPTED, SLA_EVENTS, INCIDENTS = "tickets.state", "tickets.accepted", "sla.events", "incidents"


class RecordError(ValueError):
    """A record the archive cannot store; `code` is a dead-letter reason code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class TicketRows:
    """What one `tickets.state` record becomes: the ticket and its stages."""

    ticket: dict[str, Any]
    stages: list[dict[str, Any]] = field(default_factory=list)
    surveyed: bool = False
    """The ticket has a survey event: its satisfaction score is looked up in the event history."""


def _obj(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one (a record's optional parts)."""
    return value if isinstance(value, dict) else {}


def decode(raw: bytes | None) -> dict[str, Any]:
    """The JSON object of a record value, or RecordError with the reason code intake uses.
    (orjson: about three times the json module's speed, and the archiver decodes every record.)"""
    if not raw:
        raise RecordError("empty", "the record has no value")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise RecordError("not_utf8", "the record is not UTF-8") from None
        raise RecordError("invalid_json", f"not JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(value, dict):
        raise RecordError("not_an_object", f"expected a JSON object, got {type(value).__name__}")
    return value


def _id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RecordError("schema_invalid", f"{name} is missing or not a string")
    if len(value) > MAX_ID:
        raise RecordError("schema_invalid", f"{name} is longer than {MAX_ID} characters")
    return value


def _opt_str(value: Any, limit: int = MAX_ID) -> str | None:
    if value is None:
        return None
    text = str(value) if not isinstance(value, (dict, list)) else json.dumps(value, ensure_ascii=False)
    return text[:limit]


def _int(value: Any, name: str, default: int | None = None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise RecordError("schema_invalid", f"{name} is not an integer")
    return int(value)


def _time(value: Any, name: str, required: bool = False) -> datetime | None:
    """An aware UTC datetime from ISO 8601 text or epoch seconds."""
    if value is None:
        if required:
            raise RecordError("schema_invalid", f"{name} is missing")
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, str):
        raise RecordError("schema_invalid", f"{name} is not a time")
    when = _utc(value)
    if when is None:
        raise RecordError("schema_invalid", f"{name} is not an ISO 8601 time with a UTC offset")
    return when


@lru_cache(maxsize=65_536)
def _utc(text: str) -> datetime | None:
    """ISO 8601 text with an offset as an aware UTC datetime, else None. Cached: every state of a
    ticket repeats the times of all its earlier events and stages, and parsing them again was a
    tenth of the archiver's mapping time."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return None if when.tzinfo is None else when.astimezone(UTC)


def ticket_rows(value: dict[str, Any], protector: Protector, partition: int = 0, offset: int = 0) -> TicketRows:
    """The ticket, stage and revision rows of one `tickets.state` record (ticketview.ticket_view)."""
    ticket_id = _id(value.get("ticket_id"), "ticket_id")
    triage = _obj(value.get("triage"))
    events = [e for e in value.get("events") or [] if isinstance(e, dict)]
    customer = _obj(triage.get("customer"))
    region = _obj(triage.get("region"))
    personal, sealed = protector.protect(
        {"customer": customer, "content": triage.get("content"), "address": triage.get("address")}
    )
    received_at = _time(value.get("received_at") or triage.get("received_at"), "received_at")
    status = _opt_str(value.get("status"), 32) or "received"
    stages = []
    breaches = 0
    first_response = None
    for raw in value.get("stages") or []:
        if not isinstance(raw, dict) or not raw.get("stage"):
            continue
        fired = [str(f) for f in raw.get("fired") or []]
        breached = any(f.startswith("breach") for f in fired)
        breaches += breached
        warnings = [int(f.split(":")[1]) for f in fired if f.startswith("warning:") and f.split(":")[1].isdigit()]
        met_at, due_at = _time(raw.get("met_at"), "stages.met_at"), _time(raw.get("due_at"), "stages.due_at")
        cycle = _int(raw.get("cycle"), "stages.cycle", 1)
        stage = _opt_str(raw["stage"], 40)
        if stage == "response" and cycle == 1:
            first_response = met_at
        stages.append(
            {
                "ticket_id": ticket_id,
                "cycle": cycle,
                "stage": stage,
                "started_at": _time(raw.get("started_at"), "stages.started_at"),
                "due_at": due_at,
                "met_at": met_at,
                "cancelled_at": _time(raw.get("cancelled_at"), "stages.cancelled_at"),
                "breached": breached,
                "max_warning": max(warnings, default=None),
                "on_time": None if met_at is None or due_at is None else (met_at <= due_at and not breached),
            }
        )
    # each event's time once: the last event, the last resolution and closure all come from it
    timed = [(e.get("type"), t) for e in events if (t := _time(e.get("at"), "events.at")) is not None]
    last_event_at = max((t for _, t in timed), default=received_at)
    customer_masked = personal.get("customer") or {}
    ticket = {
        "ticket_id": ticket_id,
        "status": status,
        "cycle": _int(value.get("cycle"), "cycle", 1),
        "grade": _opt_str(value.get("grade") or triage.get("grade"), 4),
        "content_grade": _opt_str(triage.get("content_grade"), 4),
        "category": _opt_str(triage.get("category"), 40),
        "confidence": _float(triage.get("confidence")),
        "manual_triage": bool(triage.get("manual_triage")) if triage else None,
        "team": _opt_str(triage.get("team"), 40),
        "queue": _opt_str(triage.get("queue")),
        "escalation_tier": _int(triage.get("escalation_tier"), "escalation_tier", 0),
        "owner": _opt_str(triage.get("owner")),
        "incident_id": _opt_str(triage.get("incident_id")),
        "linked_ticket_id": _opt_str(triage.get("linked_ticket_id")),
        "repeat_count": _int(triage.get("repeat_count"), "repeat_count", 0),
        "revision": _int(triage.get("revision"), "revision"),
        "channel": _opt_str(triage.get("channel"), 40),
        "service_type": _opt_str(triage.get("service_type"), 40),
        "province": _opt_str(region.get("province"), 200),
        "city": _opt_str(region.get("city"), 200),
        "customer_id": _opt_str(customer_masked.get("id")),
        "customer_tier": _opt_str(customer_masked.get("tier"), 20),
        "customer_name": _opt_str(customer_masked.get("name")),
        "customer_phone": _opt_str(customer_masked.get("phone")),
        "customer_id_number": _opt_str(customer_masked.get("id_number")),
        "address": _opt_str(personal.get("address"), 1000),
        "content": personal.get("content"),
        "pii": sealed,
        "received_at": received_at,
        "first_response_at": first_response,
        "resolved_at": max((t for kind, t in timed if kind == "ticket.resolved"), default=None),
        "closed_at": max((t for kind, t in timed if kind == "ticket.closed"), default=None)
        if status == "closed"
        else None,
        "breaches": breaches,
        "last_event_at": last_event_at,
        "event_count": len(events),
        "overrides": [str(o)[:500] for o in triage.get("overrides") or []] if triage else [],
        "state_version": version_of(value),
        "src_partition": partition,
        "src_offset": offset,
    }
    return TicketRows(ticket, stages, any(e.get("type") == "ticket.survey_completed" for e in events))


def revision_row(value: dict[str, Any], ticket_id: str) -> dict[str, Any]:
    """The triage revision a state carries (category, grade, team history), seen at the state's
    latest event: the triage record itself has no time of revision."""
    triage = _obj(value.get("triage"))
    times = [_time(e.get("at"), "events.at") for e in value.get("events") or [] if isinstance(e, dict)]
    overrides = triage.get("overrides") or []
    return {
        "ticket_id": ticket_id,
        "revision": _int(triage.get("revision"), "revision"),
        "category": _opt_str(triage.get("category"), 40),
        "grade": _opt_str(triage.get("grade"), 4),
        "team": _opt_str(triage.get("team"), 40),
        "queue": _opt_str(triage.get("queue")),
        "escalation_tier": _int(triage.get("escalation_tier"), "escalation_tier", 0),
        "incident_id": _opt_str(triage.get("incident_id")),
        "note": str(overrides[-1])[:500] if isinstance(overrides, list) and overrides else None,
        "seen_at": max((t for t in times if t is not None), default=_time(value.get("received_at"), "received_at")),
    }


def version_of(value: dict[str, Any]) -> int:
    """The state version of a `tickets.state` record, cheaply (without mapping the record)."""
    triage = value.get("triage")
    revision = triage.get("revision") if isinstance(triage, dict) else 0
    events = value.get("events")
    fired = sum(len(s.get("fired") or ()) for s in value.get("stages") or () if isinstance(s, dict))
    return state_version(
        len(events) if isinstance(events, list) else 0,
        fired,
        revision if isinstance(revision, int) and not isinstance(revision, bool) else 0,
    )


def state_version(events: int, fired: int, revision: int) -> int:
    """A number that never decreases from one `tickets.state` record of a ticket to the next:
    facts are only added, fired thresholds only accumulate, triage revisions only grow, and every
    change the worker publishes moves at least one of them. The store keeps the row with the
    highest version, so a record re-read after a crash, a zombie consumer's late write or a
    re-created topic (offsets back at 0) can never overwrite a newer state with an older one."""
    return events * 1_000_000 + min(fired, 999) * 1_000 + min(revision, 999)


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def event_row(value: dict[str, Any], protector: Protector, partition: int = 0, offset: int = 0) -> dict[str, Any]:
    """The history row of one `tickets.accepted` event (the validated inbound envelope)."""
    data = _obj(value.get("data"))
    masked, sealed = protector.protect(data)
    score = data.get("score") if value.get("type") == "ticket.survey_completed" else None
    return {
        "event_id": _id(value.get("event_id"), "event_id"),
        "ticket_id": _id(value.get("ticket_id"), "ticket_id"),
        "type": _opt_str(_id(value.get("type"), "type"), 64),
        "occurred_at": _time(value.get("occurred_at"), "occurred_at", required=True),
        "agent": _opt_str(data.get("agent") or data.get("first_contact_agent")),
        "score": _int(score, "data.score"),
        "data": masked,
        "pii": sealed,
        "src_partition": partition,
        "src_offset": offset,
    }


def sla_event_row(value: dict[str, Any]) -> dict[str, Any]:
    """The row of one `sla.events` record (sla.SlaEvent as JSON)."""
    return {
        "id": _id(value.get("id"), "id"),
        "ticket_id": _id(value.get("ticket_id"), "ticket_id"),
        "cycle": _int(value.get("cycle"), "cycle", 1),
        "stage": _opt_str(_id(value.get("stage"), "stage"), 40),
        "kind": _opt_str(_id(value.get("kind"), "kind"), 20),
        "percent": _int(value.get("percent"), "percent"),
        "due_at": _time(value.get("due_at"), "due_at"),
        "fired_at": _time(value.get("fired_at"), "fired_at", required=True),
        "retroactive": bool(value.get("retroactive")),
        "grade": _opt_str(value.get("grade"), 4),
        "team": _opt_str(value.get("team"), 40),
        "from_tier": _int(value.get("from_tier"), "from_tier"),
        "to_tier": _int(value.get("to_tier"), "to_tier"),
    }


ACTION_ORDER = {"open": 0, "update": 1, "close": 2}


def incident_row(value: dict[str, Any], partition: int = 0, offset: int = 0) -> dict[str, Any]:
    """The row of one `incidents` record (open, update or close; the latest wins)."""
    action = value.get("action")
    if action not in ACTION_ORDER:
        raise RecordError("schema_invalid", "action is not open, update or close")
    return {
        "id": _id(value.get("id"), "id"),
        "action": action,
        "city": _opt_str(value.get("city"), 200),
        "category": _opt_str(value.get("category"), 40),
        "count": _int(value.get("count"), "count", 0),
        "baseline": _float(value.get("baseline")),
        "first_at": _time(value.get("first_at"), "first_at"),
        "latest_at": _time(value.get("latest_at"), "latest_at"),
        "opened_at": _time(value.get("opened_at"), "opened_at", required=True),
        "closed_at": _time(value.get("closed_at"), "closed_at"),
        "state_version": ACTION_ORDER[action] * 10**12 + (_int(value.get("count"), "count", 0) or 0),
        "src_partition": partition,
        "src_offset": offset,
    }
