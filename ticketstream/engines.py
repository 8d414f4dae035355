"""The engines a process needs, built from the settings: the one place where rule, model, policy
and calendar files become objects. The worker, `classify`, `replay` and `triage evaluate` all
build them here, so an offline run uses exactly the files a worker with the same settings would.
Invalid files raise PolicyError / CalendarError naming the file and the problem.
"""

from __future__ import annotations

from collections.abc import Callable

from ticketstream.settings import Settings
from ticketstream.sla.calendar import WorkCalendar, load_overrides
from ticketstream.sla.engine import SlaEngine
from ticketstream.sla.policy import load_policy
from ticketstream.tickets.process import TicketProcess
from ticketstream.triage.classify import Classifier
from ticketstream.triage.classify import load_rules as load_classifier_rules
from ticketstream.triage.engine import TriageEngine
from ticketstream.triage.grading import Grader
from ticketstream.triage.grading import load_rules as load_grading_rules
from ticketstream.triage.model import load_model
from ticketstream.triage.routing import Router
from ticketstream.triage.routing import load_table as load_routing_table


def triage_engine(settings: Settings) -> TriageEngine:
    """The triage engine with the operator's rule files and model (or the shipped ones)."""
    model = load_model(settings.triage_model)
    return TriageEngine(
        Classifier(load_classifier_rules(settings.classifier_rules), model),
        Grader(load_grading_rules(settings.grading_rules)),
        Router(load_routing_table(settings.routing_rules)),
        model,
    )


def sla_engine(settings: Settings, on_calendar_fallback: Callable[[int], None] | None = None) -> SlaEngine:
    """The SLA engine with the operator's policy and calendar; `on_calendar_fallback(year)` is
    told of every date looked up in a year without calendar data."""
    return SlaEngine(
        load_policy(settings.sla_policy),
        WorkCalendar(load_overrides(settings.calendar), on_fallback=on_calendar_fallback),
    )


def ticket_process(
    settings: Settings, triage: TriageEngine | None = None, sla: SlaEngine | None = None
) -> TicketProcess:
    return TicketProcess(triage or triage_engine(settings), sla or sla_engine(settings))
