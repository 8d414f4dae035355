"""The full ticket record: triage plus every stage's timing, for `tickets.state` and live lookup."""

from __future__ import annotations

from typing import Any

from ticketstream.sla.engine import SlaEngine, StageTiming, TicketSla

# The lifecycle state (DOMAIN §4) that the latest event of each type puts a ticket in.
STATUS_AFTER = {
    "ticket.responded": "classified",
    "ticket.assigned": "assigned",
    "ticket.investigation_started": "investigating",
    "ticket.investigation_completed": "assigned",
    "ticket.waiting_customer": "waiting_customer",
    "ticket.customer_replied": "assigned",
    "ticket.resolved": "resolved",
    "ticket.feedback_sent": "feedback_sent",
    "ticket.survey_completed": "surveyed",
    "ticket.closed": "closed",
    "ticket.reopened": "reopened",
    "ticket.escalated": "escalated",
}


def status_of(sla: TicketSla, triaged: bool) -> str:
    if sla.facts:
        return STATUS_AFTER.get(sla.facts[-1][1], "received")
    return "classified" if triaged else "received"


def ticket_view(
    triage: dict[str, Any] | None,
    sla: TicketSla,
    engine: SlaEngine,
    now: float | None = None,
    timings: list[StageTiming] | None = None,
) -> dict[str, Any]:
    """The ticket as archive consumers and the live lookup see it; `now` adds remaining times.
    Pass `timings` when the caller already derived them."""

    def iso(epoch: float | None) -> str | None:
        return engine.iso(epoch) if epoch is not None else None

    stages = []
    for st in engine.timings(sla) if timings is None else timings:
        stage: dict[str, Any] = {
            "stage": st.stage,
            "cycle": st.cycle,
            "started_at": iso(st.start),
            "due_at": iso(st.due_at),
            "met_at": iso(st.met_at),
            "cancelled_at": iso(st.cancelled_at),
            "paused": st.paused and st.due_at is None,
            "fired": sorted(k.split(":", 2)[2] for k in sla.fired if k.startswith(f"{st.cycle}:{st.stage}:")),
        }
        if now is not None and st.due_at is not None and st.met_at is None and st.cancelled_at is None:
            stage["remaining_seconds"] = round(st.due_at - now, 3)
        stages.append(stage)
    cycles = 1 + sum(1 for _, kind, _ in sla.facts if kind == "ticket.reopened")
    return {
        "ticket_id": sla.ticket_id,
        "status": status_of(sla, triage is not None),
        "cycle": cycles,
        "grade": sla.grade.value if sla.grade else None,
        "received_at": iso(sla.received_at),
        "triage": triage,
        "events": [{"type": kind, "at": iso(at), "event_id": eid} for at, kind, eid in sla.facts],
        "stages": stages,
    }
