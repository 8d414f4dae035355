"""Triage agent: `tickets.by_customer` -> `tickets.triaged` + `queue.<team>` (+ `incidents.by_key`).

Complaints arrive keyed by customer id, so this worker holds the customer's history (repeat
detection, 二次投訴) in its `customer_history` table partition, and the pure `TriageEngine`
does the rest. Output is keyed by ticket id again, so every downstream stage sees one ticket
on one partition. Each complaint also counts towards its city's incident detection, through the
feed that sends a city's complaints together (`streams.incident_feed`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import faust

from ticketstream.schemas.events import Event, Team
from ticketstream.schemas.tickets import TRIAGED, TriagedTicket
from ticketstream.settings import Settings
from ticketstream.streams import metrics
from ticketstream.streams.deadletters import DeadLetters, guarded
from ticketstream.streams.emit import Emitter
from ticketstream.streams.incident_feed import FLUSH_SECONDS, IncidentFeed
from ticketstream.streams.intake import raw_topic
from ticketstream.streams.tables import put, table
from ticketstream.topology import BY_CUSTOMER, TABLE_CUSTOMER_HISTORY, queue_topic
from ticketstream.topology import TRIAGED as TRIAGED_TOPIC
from ticketstream.triage.engine import TriageEngine
from ticketstream.workqueue import work_queue_copy

log = logging.getLogger(__name__)


class TriageOutputs:
    """Where a triage record goes: `tickets.triaged` and its team's queue (the previous team's
    queue too when a ticket moves, so that team's system sees it leave). Queues get the
    handler's copy (`ticketstream.workqueue`): contact details, no national ID number."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.triaged = Emitter(app, settings.topic(TRIAGED_TOPIC))
        self.queues = {team: Emitter(app, settings.topic(queue_topic(team))) for team in Team}

    async def publish(
        self, record: TriagedTicket, previous_team: Team | None = None, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        key = record.ticket_id.encode()
        full = TRIAGED.dump_json(record)
        await self.triaged.send(key, full, headers=headers)
        copy = work_queue_copy(record)  # no ID number: the record itself when neither its fields nor its text hold one
        queued = full if copy is record else TRIAGED.dump_json(copy)
        await self.queues[record.team].send(key, queued)
        if previous_team is not None and previous_team != record.team:
            await self.queues[previous_team].send(key, queued)
        metrics.child(metrics.TRIAGED, record.category.value, record.grade.value).inc()
        metrics.child(metrics.ROUTED, record.team.value).inc()


def register(
    app: faust.App, settings: Settings, engine: TriageEngine, outputs: TriageOutputs, dead_letters: DeadLetters
) -> None:
    by_customer = raw_topic(app, settings.topic(BY_CUSTOMER))
    history = table(
        app,
        settings,
        TABLE_CUSTOMER_HISTORY,
        list,
        "recent complaints per customer: [ticket_id, category, epoch seconds]",
    )

    feed = IncidentFeed(app, settings)

    async def handle(event: Any, raw: bytes) -> None:
        complaint = Event.model_validate_json(raw)
        customer_id = complaint.complaint.customer.id
        record, updated = engine.triage(complaint, [tuple(h) for h in history[customer_id]])
        await put(history, customer_id, [list(h) for h in updated])
        await outputs.publish(record)
        await feed.add(
            record.region.city, record.category.top_level, record.ticket_id, complaint.occurred_at.timestamp()
        )
        if record.repeat_count >= engine.grader.rules.modifiers.repeat_min_earlier:
            metrics.REPEAT_COMPLAINTS.inc()
        if record.manual_triage:
            metrics.MANUAL_TRIAGE.inc()
        metrics.TRIAGE_LATENCY.observe(max(0.0, datetime.now(UTC).timestamp() - complaint.occurred_at.timestamp()))

    @app.agent(by_customer, concurrency=1, name="triage")
    async def triage(stream: Any) -> None:
        await guarded(stream.events(), dead_letters, "triage", handle)

    @app.timer(interval=FLUSH_SECONDS)
    async def feed_incident_detection() -> None:
        await feed.flush_held()
