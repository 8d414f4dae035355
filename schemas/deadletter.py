"""Dead-letter records (`tickets.dlq`): what could not be accepted, why, and where it came from.

A record carries a machine-readable reason code, a human message and per-field errors (all
with personal data masked), the original bytes (UTF-8 text, or base64 when they are not UTF-8;
masked by default, see `Settings.dlq_original`), and the exact source coordinates so the event
can be fetched again from its topic and replayed once the producer or the rules are fixed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict


class ReasonCode(StrEnum):
    EMPTY = "empty"
    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    SCHEMA_INVALID = "schema_invalid"
    KEY_MISMATCH = "key_mismatch"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"
    PROCESSING_ERROR = "processing_error"
    INVALID_ALERT = "invalid_alert"
    """An `alerts` record that is not a valid alert (schemas.alerts); dead-lettered by the bridge."""
    ALERT_REJECTED = "alert_rejected"
    """Alertmanager refused the alert on its own with a 4xx answer."""
    ALERT_UNDELIVERABLE = "alert_undeliverable"
    """Alertmanager failed on the alert alone, again and again, while it accepted others."""


class FieldError(BaseModel):
    model_config = ConfigDict(frozen=True)

    loc: str
    type: str
    message: str


class Reason(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: ReasonCode
    message: str
    errors: list[FieldError] = []


class Original(BaseModel):
    model_config = ConfigDict(frozen=True)

    encoding: Literal["utf-8", "base64"]
    value: str
    masked: bool
    truncated: bool
    size: int
    sha256: str
    omitted: bool = False
    """True when nothing of the input could be masked with confidence (neither JSON nor UTF-8
    text): the record keeps only `size` and `sha256`; the input stays at its source coordinates."""


class Source(BaseModel):
    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None
    key: str | None = None


class DeadLetter(BaseModel):
    """One rejected input. `id` is deterministic (stage + source coordinates, and the input's
    position when one message held several: `#i`): a re-delivered input yields the same id, so
    a consumer of the dead-letter topic can deduplicate."""

    model_config = ConfigDict(frozen=True)

    id: str
    stage: str
    reason: Reason
    original: Original
    source: Source
    event_id: str | None = None
    ticket_id: str | None = None
    event_type: str | None = None
    failed_at: datetime
