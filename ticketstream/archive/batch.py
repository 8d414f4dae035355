"""A batch of records on their way into the archive: mapped, de-duplicated, ready for one
transaction (pure; the store writes it).

A busy ticket publishes its whole state after every change, so one batch often holds several
states of one ticket: only the newest is mapped and written (the store would keep the newest
anyway), which is most of why the archiver keeps up with the pipeline. A state superseded within
its batch is therefore only checked for an id, not mapped: it is never stored, so it cannot be
"a record the archive cannot store". Events, SLA events and revisions are kept once per id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ticketstream.archive.pii import Protector
from ticketstream.archive.rows import (
    ACCEPTED,
    INCIDENTS,
    SLA_EVENTS,
    STATE,
    RecordError,
    TicketRows,
    _id,
    decode,
    event_row,
    incident_row,
    revision_row,
    sla_event_row,
    ticket_rows,
    version_of,
)


@dataclass
class Batch:
    protector: Protector
    not_before: datetime | None = None
    """Retention cut-off: records older than this are not (re-)archived, so a purge stays a purge
    when the archiver later re-reads a topic from the beginning."""
    tickets: dict[str, TicketRows] = field(default_factory=dict)
    revisions: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    sla: dict[str, dict[str, Any]] = field(default_factory=dict)
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    surveyed: set[str] = field(default_factory=set)
    """Tickets whose satisfaction score must be looked up again (a survey event or state arrived)."""
    records: int = 0
    expired: int = 0
    _states: dict[str, tuple[int, dict[str, Any], int, int, Any]] = field(default_factory=dict)

    def add(self, topic: str, raw: bytes | None, partition: int = 0, offset: int = 0, ref: Any = None) -> None:
        """Map one record (`topic` is the logical name); RecordError if it cannot be stored.
        States are mapped by `finish`; `ref` (the Kafka record) comes back with their errors."""
        value = decode(raw)
        self.records += 1
        if topic == STATE:
            tid = _id(value.get("ticket_id"), "ticket_id")
            version = version_of(value)
            held = self._states.get(tid)
            if held is None or version >= held[0]:
                self._states[tid] = (version, value, partition, offset, ref)
            triage = value.get("triage")
            if (
                isinstance(triage, dict)
                and isinstance(triage.get("revision"), int)
                and (tid, triage["revision"]) not in self.revisions
            ):
                self.revisions[(tid, triage["revision"])] = revision_row(value, tid)
        elif topic == ACCEPTED:
            row = event_row(value, self.protector, partition, offset)
            if self._expired(row["occurred_at"]):
                return
            self.events.setdefault(row["event_id"], row)
            if row["score"] is not None:
                self.surveyed.add(row["ticket_id"])
        elif topic == SLA_EVENTS:
            row = sla_event_row(value)
            if not self._expired(row["fired_at"]):
                self.sla.setdefault(row["id"], row)
        elif topic == INCIDENTS:
            row = incident_row(value, partition, offset)
            held_incident = self.incidents.get(row["id"])
            if not self._expired(row["opened_at"]) and (
                held_incident is None or row["state_version"] >= held_incident["state_version"]
            ):
                self.incidents[row["id"]] = row
        else:
            raise RecordError("processing_error", f"the archive does not read topic {topic}")

    def finish(self) -> list[tuple[Any, RecordError]]:
        """Map the newest state of each ticket; returns the records that could not be mapped."""
        failed = []
        for tid, (_, value, partition, offset, ref) in self._states.items():
            try:
                rows = ticket_rows(value, self.protector, partition, offset)
            except RecordError as exc:
                failed.append((ref, exc))
                self.revisions = {k: v for k, v in self.revisions.items() if k[0] != tid}
                continue
            if self._expired(rows.ticket["received_at"]):
                self.revisions = {k: v for k, v in self.revisions.items() if k[0] != tid}
                continue
            self.tickets[tid] = rows
            if rows.surveyed:
                self.surveyed.add(tid)
        self._states.clear()
        return failed

    def _expired(self, when: datetime | None) -> bool:
        if self.not_before is not None and when is not None and when < self.not_before:
            self.expired += 1
            return True
        return False

    def __bool__(self) -> bool:
        return bool(self.tickets or self.events or self.sla or self.incidents or self._states)
