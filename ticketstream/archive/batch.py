"""A batch of records on their way into the archive: mapped, de-duplicated, ready for one
transaction (pure; the store writes it).

A busy ticket publishes its whole state after every change, so one batch often holds several
states of one ticket: only the newest is written (the store would keep the newest anyway), which
is most of why the archiver keeps up with the pipeline. Events, SLA events and revisions are
kept once per id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ticketstream.archive.pii import Protector
from ticketstream.archive.rows import (ACCEPTED, INCIDENTS, SLA_EVENTS, STATE, RecordError, TicketRows, decode,
                                       event_row, incident_row, sla_event_row, ticket_rows)


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

    def add(self, topic: str, raw: bytes | None, partition: int = 0, offset: int = 0) -> None:
        """Map one record (`topic` is the logical name); RecordError if it cannot be stored."""
        value = decode(raw)
        self.records += 1
        if topic == STATE:
            rows = ticket_rows(value, self.protector, partition, offset)
            if self._expired(rows.ticket["received_at"]):
                return
            tid = rows.ticket["ticket_id"]
            held = self.tickets.get(tid)
            if held is None or rows.ticket["state_version"] >= held.ticket["state_version"]:
                self.tickets[tid] = rows
            if rows.revision is not None:
                self.revisions.setdefault((tid, rows.revision["revision"]), rows.revision)
            if rows.surveyed:
                self.surveyed.add(tid)
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
                    held_incident is None or row["state_version"] >= held_incident["state_version"]):
                self.incidents[row["id"]] = row
        else:
            raise RecordError("processing_error", f"the archive does not read topic {topic}")

    def _expired(self, when: datetime | None) -> bool:
        if self.not_before is not None and when is not None and when < self.not_before:
            self.expired += 1
            return True
        return False

    def __bool__(self) -> bool:
        return bool(self.tickets or self.events or self.sla or self.incidents)
