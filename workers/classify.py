"""`ticketstream classify`: triage JSON lines offline with exactly the stream's code.

Input lines are `complaint.received` events (the envelope channel systems publish) or, for
convenience, bare complaint objects with at least `content` (and optionally `ticket_id`,
`occurred_at`, `channel`, `tier`, `customer_id`, `province`, `city`). Customer history
accumulates in file order, as it does per customer partition in the stream. One JSON line is
written per input line; a line that cannot be triaged gets an `error` instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import ValidationError

from ticketstream.schemas.tickets import TRIAGED
from ticketstream.triage.engine import HistoryEntry, TriageEngine
from ticketstream.triage.evaluation import complaint_event


def classify_lines(lines: Iterable[str], engine: TriageEngine, full: bool = False) -> Iterator[dict[str, Any]]:
    histories: dict[str, list[HistoryEntry]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = complaint_event(json.loads(line), number)
        except (ValueError, ValidationError) as exc:
            message = (
                str(exc).splitlines()[0]
                if not isinstance(exc, ValidationError)
                else (
                    f"{exc.error_count()} schema error(s): "
                    + "; ".join(
                        f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False)[:3]
                    )
                )
            )
            yield {"line": number, "ticket_id": None, "error": message}
            continue
        customer = event.complaint.customer.id
        record, histories[customer] = engine.triage(event, histories.get(customer, []))
        if full:
            yield {"line": number, **json.loads(TRIAGED.dump_json(record))}
            continue
        yield {
            "line": number,
            "ticket_id": record.ticket_id,
            "category": record.category.value,
            "grade": record.grade.value,
            "team": record.team.value,
            "queue": record.queue,
            "confidence": record.confidence,
            "manual_triage": record.manual_triage,
            "reasons": record.grade_reasons,
            "evidence": record.evidence,
            "notify": [t.value for t in record.notify],
            "repeat_count": record.repeat_count,
            "linked_ticket_id": record.linked_ticket_id,
            "routing_reason": record.routing_reason,
            "model_version": record.model_version,
        }
