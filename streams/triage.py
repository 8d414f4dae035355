"""Triage in the ticket agent: a new complaint -> `tickets.triaged` + `queue.<team>` (+
`customers.history`, `incidents.by_key`).

A complaint is triaged by its ticket's owner in the step that accepts it, against the customer's
history (repeat detection, 二次投訴) that every worker keeps a copy of
(`streams.customer_history`), and its record is applied to the ticket at once: no hop through a
topic keyed by customer and back. Each complaint also counts towards its city's incident
detection, through the feed that sends a city's complaints together (`streams.incident_feed`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
import orjson

from ticketstream.schemas.events import Event, Team
from ticketstream.schemas.tickets import TRIAGED, TriagedTicket
from ticketstream.settings import Settings
from ticketstream.streams import metrics
from ticketstream.streams.customer_history import HistoryReplica, checked_entry
from ticketstream.streams.emit import Emitter
from ticketstream.streams.incident_feed import FLUSH_SECONDS, IncidentFeed
from ticketstream.tickets.process import Effects, TicketProcess
from ticketstream.tickets.state import TicketState
from ticketstream.topology import TRIAGED as TRIAGED_TOPIC
from ticketstream.topology import queue_topic
from ticketstream.triage.history import CustomerHistories
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
        self,
        record: TriagedTicket,
        previous_team: Team | None = None,
        counted: bool = True,
        as_json: dict[str, Any] | None = None,
    ) -> None:
        """Send the record; `counted` False for a record sent again (a complaint read again after
        a crash), which the triage metrics counted the first time. `as_json`: the record's JSON
        form when the ticket has it already (`TicketState.triage_json`, made for its table value
        and view), so pydantic does not convert it a second time (orjson writes the same bytes)."""
        key = record.ticket_id.encode()
        full = TRIAGED.dump_json(record) if as_json is None else orjson.dumps(as_json)
        await self.triaged.send(key, full)
        copy = work_queue_copy(record)  # no ID number: the record itself when neither its fields nor its text hold one
        queued = full if copy is record else TRIAGED.dump_json(copy)
        await self.queues[record.team].send(key, queued)
        if previous_team is not None and previous_team != record.team:
            await self.queues[previous_team].send(key, queued)
        if counted:
            metrics.child(metrics.TRIAGED, record.category.value, record.grade.value).inc()
            metrics.child(metrics.ROUTED, record.team.value).inc()


class Triage:
    """A new complaint's step in the ticket agent (streams/tickets.py): triage it against the
    customer's history in this worker's copy and apply it (`TicketProcess.on_complaint`), then
    send the ticket's triage record to `tickets.triaged` and its team's queue, the complaint to its
    city's incident detection and, last, the customer's new entry to every worker's copy. The
    ticket agent saves the state and sends the rest of the effects."""

    def __init__(self, app: faust.App, settings: Settings, process: TicketProcess, outputs: TriageOutputs) -> None:
        self.process = process
        self.outputs = outputs
        self.histories = CustomerHistories(process.triage.repeat_window_days)
        self.replica = HistoryReplica(app, settings, self.histories)
        self.feed = IncidentFeed(app, settings)
        self.repeat_min = process.triage.grader.rules.modifiers.repeat_min_earlier
        metrics.CUSTOMER_HISTORY.set_function(lambda: len(self.histories))

        @app.timer(interval=FLUSH_SECONDS)
        async def feed_incident_detection() -> None:
            await self.feed.flush_held()

    async def complaint(self, state: TicketState, complaint: Event, now: float) -> Effects:
        if await self.replica.wait_ready():
            now = time.time()
        customer = complaint.complaint.customer.id
        fx, record, entry = self.process.on_complaint(state, complaint, self.histories.of(customer), now)
        # This complaint's record (revision 1; the revisions its step made, such as a retroactive
        # escalation's, follow with the effects). A complaint read again after a crash changes
        # nothing, and the ticket's newest revision goes out again instead: what a team's queue
        # should hold, and it may not have reached the topics before the crash.
        published = record if fx.changed or state.triage is None else state.triage
        as_json = state.triage_json() if published is state.triage else None
        await self.outputs.publish(published, counted=fx.changed, as_json=as_json)
        at = complaint.occurred_at.timestamp()
        await self.feed.add(record.region.city, record.category.top_level, record.ticket_id, at)
        # The entry last: a step that fails before dead-letters the complaint, which must then
        # count as a repeat nowhere (the ticket agent's save after this step can still fail: the
        # producer is then broken and the worker stops, and the complaint is read again).
        try:
            checked = checked_entry(entry, time.time())
        except ValueError:  # dated far ahead: it would prune the customer's history (never sent)
            metrics.CUSTOMER_HISTORY_BAD.inc()
        else:
            await self.replica.send(customer, checked)
            self.histories.remember(customer, checked)
        if fx.changed:
            if record.repeat_count >= self.repeat_min:
                metrics.REPEAT_COMPLAINTS.inc()
            if record.manual_triage:
                metrics.MANUAL_TRIAGE.inc()
            metrics.TRIAGE_LATENCY.observe(max(0.0, now - at))
        return fx
