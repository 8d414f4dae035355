"""People's corrections as labelled examples (糾錯回流): the best labels there are.

A `ticket.reclassified` or `ticket.regraded` event says what a person decided a complaint really
was. Paired with the complaint's own `complaint.received` event (same ticket, same partition of
`tickets.accepted`, earlier), it is one labelled example for `ticketstream triage train`. The
newest correction of each kind wins; a ticket corrected several times gives one example.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ticketstream.schemas.events import ComplaintReceivedData, Event, EventType, ReclassifiedData, RegradedData


@dataclass
class _Complaint:
    content: str
    channel: str
    tier: str


class CorrectionCollector:
    """Feed it the accepted events in topic order; `examples()` gives the labelled lines.

    Memory grows with the complaints seen (their text is needed when a correction comes), about
    the size of the topic's complaint texts."""

    def __init__(self, since: datetime | None = None, until: datetime | None = None) -> None:
        self.since, self.until = since, until
        self._complaints: dict[str, _Complaint] = {}
        self._corrections: dict[str, dict[str, Any]] = {}

    def see(self, event: Event) -> None:
        data = event.data
        if event.type is EventType.COMPLAINT_RECEIVED and isinstance(data, ComplaintReceivedData):
            self._complaints[event.ticket_id] = _Complaint(data.content, data.channel.value, data.customer.tier.value)
            return
        if not isinstance(data, ReclassifiedData | RegradedData):
            return
        at = event.occurred_at
        if (self.since and at < self.since) or (self.until and at >= self.until):
            return
        entry = self._corrections.setdefault(event.ticket_id, {"ticket_id": event.ticket_id})
        key = "category" if isinstance(data, ReclassifiedData) else "grade"
        previous = entry.get(f"{key}_at")
        if previous is not None and previous > at:
            return  # an older correction arriving late: the newer one stands
        entry[key] = data.category.value if isinstance(data, ReclassifiedData) else data.grade.value
        entry[f"{key}_at"] = at
        entry[f"{key}_by"] = data.agent
        if data.reason:
            entry[f"{key}_reason"] = data.reason

    def examples(self) -> tuple[list[dict[str, Any]], int]:
        """(labelled examples, corrections whose complaint was not found: outside retention)."""
        out, missing = [], 0
        for ticket_id, entry in self._corrections.items():
            complaint = self._complaints.get(ticket_id)
            if complaint is None:
                missing += 1
                continue
            row = {
                "ticket_id": ticket_id,
                "content": complaint.content,
                "channel": complaint.channel,
                "tier": complaint.tier,
                "source": "corrections",
            }
            for key in ("category", "grade"):
                if key in entry:
                    row[key] = entry[key]
                    row[f"{key}_by"] = entry[f"{key}_by"]
                    row[f"{key}_at"] = entry[f"{key}_at"].isoformat()
                    if f"{key}_reason" in entry:
                        row[f"{key}_reason"] = entry[f"{key}_reason"]
            out.append(row)
        return out, missing
