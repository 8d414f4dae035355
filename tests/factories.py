"""Builders of valid inbound events for tests."""

from __future__ import annotations

import json
from typing import Any


def received(
    ticket_id: str = "T-1", event_id: str | None = None, occurred_at: str = "2026-11-23T10:00:00+08:00", **data: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "hotline",
        "customer": {"id": "C-1", "tier": "ordinary", "name": "張三", "phone": "13812345678"},
        "region": {"province": "廣東", "city": "廣州"},
        "content": "家裡寬帶斷網三天了",
    }
    body.update(data)
    return {
        "event_id": event_id or f"{ticket_id}:received",
        "type": "complaint.received",
        "ticket_id": ticket_id,
        "occurred_at": occurred_at,
        "schema_version": 1,
        "data": body,
    }


def lifecycle(
    event_type: str,
    ticket_id: str = "T-1",
    occurred_at: str = "2026-11-23T11:00:00+08:00",
    event_id: str | None = None,
    **data: Any,
) -> dict[str, Any]:
    return {
        "event_id": event_id or f"{ticket_id}:{event_type}",
        "type": event_type,
        "ticket_id": ticket_id,
        "occurred_at": occurred_at,
        "schema_version": 1,
        "data": data,
    }


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode("utf-8")
