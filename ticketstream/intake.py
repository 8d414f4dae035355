"""Intake (受理校驗): turn any byte string into a valid event or a dead-letter record, never an exception.

The Faust agent in `streams.intake` only feeds this module bytes with their source coordinates
and forwards what it returns. Keeping the decision here makes it testable with arbitrary input
(property tests feed it random bytes) and reusable by the publisher, which validates lines
with the same code before sending.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from ticketstream.privacy import mask_json, mask_keyed_text, mask_text
from ticketstream.schemas.deadletter import DeadLetter, FieldError, Original, Reason, ReasonCode, Source
from ticketstream.schemas.events import ComplaintReceivedData, Event, EventType

MAX_EVENT_BYTES = 256 * 1024
"""Largest accepted event. A complaint's content is at most 20,000 characters (60 KB in UTF-8);
anything far larger is a producer bug, and dead-letter copies must stay under Kafka's 1 MB limit."""

MAX_ORIGINAL_BYTES = 64 * 1024
"""How much of a rejected input a dead-letter record carries; the rest stays in the source topic."""


class Rejected(Exception):
    """Validation failed; carries the reason for the dead-letter record."""

    def __init__(self, reason: Reason, parsed: dict[str, Any] | None = None) -> None:
        super().__init__(reason.message)
        self.reason = reason
        self.parsed = parsed


def _short_ids(parsed: dict[str, Any] | None) -> dict[str, str | None]:
    out: dict[str, str | None] = {"event_id": None, "ticket_id": None, "event_type": None}
    if parsed:
        for field, key in (("event_id", "event_id"), ("ticket_id", "ticket_id"), ("event_type", "type")):
            value = parsed.get(key)
            if isinstance(value, str):
                out[field] = mask_text(value[:128])
    return out


def _errors(exc: ValidationError) -> list[FieldError]:
    # Never `input` or `ctx`: they may quote personal data. Messages are masked anyway.
    return [
        FieldError(
            loc=".".join(str(p) for p in err["loc"]) or "(root)",
            type=err["type"],
            message=mask_text(err["msg"])[:300],
        )
        for err in exc.errors(include_url=False, include_input=False, include_context=False)[:50]
    ]


def parse_event(raw: bytes, key: bytes | None = None, check_key: bool = True) -> Event:
    """Validate one inbound value; raise `Rejected` with the precise reason otherwise."""
    if not raw:
        raise Rejected(Reason(code=ReasonCode.EMPTY, message="the message value is empty"))
    if len(raw) > MAX_EVENT_BYTES:
        raise Rejected(
            Reason(
                code=ReasonCode.TOO_LARGE,
                message=f"the message is {len(raw)} bytes; at most {MAX_EVENT_BYTES} are accepted",
            )
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(
            Reason(code=ReasonCode.NOT_UTF8, message=f"not UTF-8 text: invalid byte at position {exc.start}")
        ) from None
    try:
        parsed = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise Rejected(Reason(code=ReasonCode.INVALID_JSON, message=f"not valid JSON{where}")) from None
    if not isinstance(parsed, dict):
        raise Rejected(
            Reason(code=ReasonCode.NOT_AN_OBJECT, message=f"expected a JSON object, got {type(parsed).__name__}")
        )
    version = parsed.get("schema_version")
    if version is not None and version != 1:
        raise Rejected(
            Reason(
                code=ReasonCode.UNSUPPORTED_SCHEMA_VERSION,
                message=f"schema_version {mask_text(str(version))[:20]} is not supported; this worker reads version 1",
            ),
            parsed,
        )
    try:
        event = Event.model_validate(parsed)
    except ValidationError as exc:
        errors = _errors(exc)
        summary = "; ".join(f"{e.loc}: {e.message}" for e in errors[:5])
        raise Rejected(
            Reason(
                code=ReasonCode.SCHEMA_INVALID, message=f"{exc.error_count()} schema error(s): {summary}", errors=errors
            ),
            parsed,
        ) from None
    if check_key and key != event.ticket_id.encode("utf-8"):
        raise Rejected(
            Reason(
                code=ReasonCode.KEY_MISMATCH,
                message="the message key must be the ticket_id, so that a ticket's events stay in order on one partition",
            ),
            parsed,
        )
    return event


def _truncate_utf8(text: str, limit: int) -> tuple[str, bool]:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text, False
    return data[:limit].decode("utf-8", errors="ignore"), True


def _masked_original(raw: bytes, parsed: dict[str, Any] | None, digest: str) -> Original:
    """The masked copy of a rejected input (DOMAIN §8: no personal data in clear in dead letters).

    What decodes is masked by meaning: an input that parses as JSON (even when it is too large,
    or not UTF-8 and read with replacement characters) is masked field by field, names
    included, then truncated; text that is not JSON is masked by key patterns and shapes
    (`mask_keyed_text`). Bytes that are neither keep only their SHA-256 and length: a name in
    undecodable bytes cannot be found, so nothing of them is copied (`omitted`). The byte-exact
    input stays re-readable at its source coordinates."""
    if parsed is None:
        try:
            text, is_text = raw.decode("utf-8"), True
        except UnicodeDecodeError:
            text, is_text = raw.decode("utf-8", errors="replace"), False
        try:
            candidate = json.loads(text)
        except (ValueError, RecursionError):
            candidate = None
        if isinstance(candidate, (dict, list)):
            parsed = candidate  # type: ignore[assignment]
        elif not is_text:  # not UTF-8 and not JSON: nothing here can be masked with confidence
            return Original(
                encoding="utf-8",
                value="",
                masked=True,
                truncated=len(raw) > 0,
                size=len(raw),
                sha256=digest,
                omitted=True,
            )
        else:
            value, truncated = _truncate_utf8(mask_keyed_text(text), MAX_ORIGINAL_BYTES)
            return Original(
                encoding="utf-8", value=value, masked=True, truncated=truncated, size=len(raw), sha256=digest
            )
    value, truncated = _truncate_utf8(json.dumps(mask_json(parsed), ensure_ascii=False), MAX_ORIGINAL_BYTES)
    return Original(encoding="utf-8", value=value, masked=True, truncated=truncated, size=len(raw), sha256=digest)


def _original(raw: bytes, parsed: dict[str, Any] | None, masked: bool) -> Original:
    digest = hashlib.sha256(raw).hexdigest()
    if masked:
        return _masked_original(raw, parsed, digest)
    truncated = len(raw) > MAX_ORIGINAL_BYTES
    body = raw[:MAX_ORIGINAL_BYTES]
    try:
        return Original(
            encoding="utf-8",
            value=body.decode("utf-8"),
            masked=False,
            truncated=truncated,
            size=len(raw),
            sha256=digest,
        )
    except UnicodeDecodeError:
        return Original(
            encoding="base64",
            value=base64.b64encode(body).decode("ascii"),
            masked=False,
            truncated=truncated,
            size=len(raw),
            sha256=digest,
        )


def dead_letter(
    raw: bytes,
    reason: Reason,
    source: Source,
    stage: str = "intake",
    parsed: dict[str, Any] | None = None,
    mask_original: bool = True,
    now: datetime | None = None,
    part: int | None = None,
) -> DeadLetter:
    """Build the dead-letter record of a rejected input (deterministic id from the source, and
    from `part`, the input's position in its message, when one message carried several inputs
    that may each fail: a city's complaints in one `incidents.by_key` record)."""
    where = f"{stage}:{source.topic}:{source.partition}:{source.offset}"
    return DeadLetter(
        id=where if part is None else f"{where}#{part}",
        stage=stage,
        reason=reason,
        original=_original(raw, parsed, mask_original),
        source=source,
        failed_at=now or datetime.now(UTC),
        **_short_ids(parsed),
    )


def key_text(key: bytes | None) -> str | None:
    """A printable, masked, bounded rendering of a message key for dead-letter sources."""
    if key is None:
        return None
    return mask_text(key[:200].decode("utf-8", errors="replace"))


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """Short digests used by duplicate detection: which event, and what it said."""

    event: str
    content: str


def canonical(event: Event) -> bytes:
    """The event's canonical JSON: what intake forwards, and what duplicate detection compares."""
    return event.model_dump_json(exclude_none=True).encode("utf-8")


COMPLAINT_RECEIVED = EventType.COMPLAINT_RECEIVED.value


@dataclass(frozen=True, slots=True)
class Checked:
    """A validated event in canonical form, with the few fields that de-duplication and the
    forwarding after it need. Made once per inbound message (`checked`); the second intake hop
    rebuilds it from the canonical JSON alone (`from_canonical`) instead of validating again."""

    ticket_id: str
    event_id: str
    type: str
    body: bytes
    customer_id: str | None = None
    """The customer of a `complaint.received`; else None."""
    channel: str | None = None
    event: Event | None = field(default=None, compare=False)
    """The validated event itself when intake validated it here (not after `from_canonical`),
    so that applying it to its ticket needs no second validation; the same `Checked` either way."""


def checked(event: Event, body: bytes | None = None) -> Checked:
    """The `Checked` form of a validated event; pass `body` when its canonical JSON is at hand."""
    customer_id: str | None = None
    channel: str | None = None
    if isinstance(event.data, ComplaintReceivedData):
        customer_id, channel = event.data.customer.id, event.data.channel.value
    return Checked(
        event.ticket_id,
        event.event_id,
        event.type.value,
        canonical(event) if body is None else body,
        customer_id,
        channel,
        event,
    )


def from_canonical(body: bytes) -> Checked:
    """The `Checked` form of canonical JSON that intake itself wrote (`tickets.keyed`): trusted,
    so only parsed, not validated (a foreign record fails here with KeyError or a JSON error)."""
    data = orjson.loads(body)
    if data["type"] == COMPLAINT_RECEIVED:
        complaint = data["data"]
        return Checked(
            data["ticket_id"], data["event_id"], data["type"], body, complaint["customer"]["id"], complaint["channel"]
        )
    return Checked(data["ticket_id"], data["event_id"], data["type"], body)


def fingerprint(event: Event, body: bytes | None = None) -> Fingerprint:
    """Digests of the event id and of its canonical content (key order and spacing ignored);
    pass `body` when the canonical form is at hand already, to serialise once."""
    return fingerprint_of(event.event_id, canonical(event) if body is None else body)


def fingerprint_of(event_id: str, body: bytes) -> Fingerprint:
    """The fingerprint of an event given by its id and its canonical JSON `body`."""
    eid = hashlib.blake2b(event_id.encode("utf-8"), digest_size=8).hexdigest()
    content = hashlib.blake2b(body, digest_size=8).hexdigest()
    return Fingerprint(eid, content)


def read_at(hop: str, partition: int, offset: int) -> str:
    """Where intake read a message: `hop` `i` (`tickets.inbound`, decided in place) or `k`
    (`tickets.keyed`, after re-keying), then `partition:offset`. The hop keeps the two topics'
    coordinates apart, which can be equal numbers."""
    return f"{hop}{partition}:{offset}"


def seen_entry(fp: Fingerprint, source: str) -> str:
    """What intake remembers of an accepted event: its content digest and where it was read
    (`read_at`)."""
    return f"{fp.content}@{source}"


def classify_repeat(seen: dict[str, str], fp: Fingerprint, source: str | None = None) -> str:
    """'new', 'duplicate' (same id, same content: drop it), 'conflict' (same id, other content) or
    'redelivery': the very message accepted before (same source coordinates), read again because
    its worker died before committing. Its table entry reached Kafka, but its outputs may not
    have (they are separate produce requests), so a redelivery is forwarded again: at-least-once,
    never lost. Entries written before the source was recorded (content digest only) still tell
    duplicates and conflicts apart."""
    previous = seen.get(fp.event)
    if previous is None:
        return "new"
    content, _, accepted_at = previous.partition("@")
    if content != fp.content:
        return "conflict"
    return "redelivery" if source is not None and accepted_at == source else "duplicate"
