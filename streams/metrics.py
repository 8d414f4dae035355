"""Prometheus metrics of the worker. Labels are bounded enums: never ticket, customer or free text."""

from __future__ import annotations

import urllib.request
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, Info
from prometheus_client.metrics import MetricWrapperBase

from ticketstream import __version__

WORKER_INFO = Info("ticketstream_worker", "Worker build and identity.")
WORKER_INFO.info({"version": __version__})

INTAKE_ACCEPTED = Counter("ticketstream_intake_accepted", "Valid events forwarded by intake, by event type.", ["type"])
INTAKE_DUPLICATES = Counter(
    "ticketstream_intake_duplicates", "Exact duplicates (same event_id, same content) dropped by intake."
)
INTAKE_REDELIVERED = Counter(
    "ticketstream_intake_redelivered",
    "Accepted messages read again after a worker died before committing, forwarded again (at-least-once).",
)
INTAKE_REKEYED = Counter(
    "ticketstream_intake_rekeyed",
    "Valid events that arrived off their ticket's home partition (a producer with another partitioner) "
    "and went through tickets.keyed to be de-duplicated there.",
)
DEADLETTERS = Counter(
    "ticketstream_deadletters", "Records sent to the dead-letter topic, by stage and reason code.", ["stage", "reason"]
)
INTAKE_SECONDS = Histogram(
    "ticketstream_intake_processing_seconds",
    "Time intake spends on one inbound message (validate, de-duplicate, forward; both hops when re-keyed).",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0),
)
COMPLAINTS = Counter("ticketstream_complaints", "New complaints accepted, by channel.", ["channel"])
TRIAGED = Counter("ticketstream_triaged", "Triage revisions published, by category and grade.", ["category", "grade"])
ROUTED = Counter("ticketstream_routed", "Triage revisions published to a team queue, by team.", ["team"])
REPEAT_COMPLAINTS = Counter("ticketstream_repeat_complaints", "Complaints graded up as repeats (二次投訴).")
MANUAL_TRIAGE = Counter("ticketstream_manual_triage", "Complaints the classifier left to manual triage.")
CUSTOMER_HISTORY = Gauge(
    "ticketstream_customer_history_customers", "Customers in this worker's copy of the customer history."
)
CUSTOMER_HISTORY_BAD = Counter(
    "ticketstream_customer_history_bad_entries", "Records of customers.history that are not history entries (skipped)."
)
TRIAGE_OVERRIDES = Counter("ticketstream_triage_overrides", "People's overrides applied, by event type.", ["type"])
TRIAGE_LATENCY = Histogram(
    "ticketstream_triage_latency_seconds",
    "From a complaint's occurred_at to its triage record (includes producer and queueing delay).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
SLA_EVENTS = Counter(
    "ticketstream_sla_events", "SLA events emitted, by stage, kind, grade and team.", ["stage", "kind", "grade", "team"]
)
SLA_FIRE_DELAY = Histogram(
    "ticketstream_sla_fire_delay_seconds",
    "How long after its threshold instant a warning, breach or escalation was emitted (not retroactive ones).",
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30, 60),
)
DEADLINE_INDEX = Gauge(
    "ticketstream_deadline_index_tickets", "Tickets with a pending threshold in this worker's index."
)
CALENDAR_FALLBACKS = Counter(
    "ticketstream_calendar_fallbacks", "Dates looked up in a year without calendar data.", ["year"]
)
CALENDAR_COVERED_UNTIL = Gauge(
    "ticketstream_calendar_covered_until_timestamp_seconds",
    "End (24:00 local) of the last day with working-calendar data (package plus override file): "
    "working-day clocks after it fall back to Monday-Friday.",
)
ALERTS = Counter("ticketstream_alerts", "Alerts published to the alerts topic, by alert name.", ["alertname"])
TICKET_MESSAGES = Counter(
    "ticketstream_ticket_messages",
    "Inputs the ticket agent applied to a ticket, by source: new complaints (triage), accepted lifecycle "
    "events, ticks, incident links.",
    ["source"],
)
INCIDENT_RECORDS = Counter("ticketstream_incident_records", "Incident records published, by action.", ["action"])
OPEN_INCIDENTS = Gauge("ticketstream_open_incidents", "Mass incidents open on this worker's partitions.")
INCIDENT_LINKS = Counter("ticketstream_incident_links", "Tickets linked to a mass incident.")
SLA_COMPLETIONS = Counter(
    "ticketstream_sla_completions",
    'Stages met, by stage, grade, team and whether on time (及時率 = on_time="true" / all).',
    ["stage", "grade", "team", "on_time"],
)
SATISFACTION = Histogram(
    "ticketstream_satisfaction_score", "Survey scores (1-5) of closed-loop visits (回訪).", buckets=(1, 2, 3, 4, 5)
)
TICKETS_CLOSED = Counter("ticketstream_tickets_closed", "Tickets closed (閉環), by team.", ["team"])
OPEN_TICKETS = Gauge(
    "ticketstream_open_tickets", "Open tickets on this worker's partitions, by team and grade.", ["team", "grade"]
)
AT_RISK = Gauge(
    "ticketstream_at_risk_stages",
    "Open stages past their 75 % warning and not yet met or breached, by team, grade and stage.",
    ["team", "grade", "stage"],
)
SLA_APPLY_LATENCY = Histogram(
    "ticketstream_sla_apply_latency_seconds",
    "From a lifecycle event's occurred_at to its application to the ticket's SLA clocks.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
CONSUMER_LAG = Gauge(
    "ticketstream_consumer_lag_messages",
    "Messages not yet consumed, per input topic and partition.",
    ["topic", "partition"],
)


_CHILDREN: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}


def child(metric: MetricWrapperBase, *values: str) -> Any:
    """`metric.labels(*values)`, remembered: prometheus_client checks the label names, makes a
    tuple of strings and takes a lock on every `labels` call (2-3 µs with four labels), and the
    ticket agent makes several per event. Values in the order of the metric's label names; they
    are bounded enums, so the map stays small. A metric that is cleared goes through `clear`."""
    key = (metric, values)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(*values)
    return found


def clear(metric: MetricWrapperBase) -> None:
    """`metric.clear()` and forget its remembered children (they no longer belong to it)."""
    metric.clear()
    for key in [key for key in _CHILDREN if key[0] is metric]:
        del _CHILDREN[key]


def initialise(stages: list[str]) -> None:
    """Create every bounded label combination at zero, so that rate() and increase() see a
    series from 0 instead of first meeting it at its first value (which they cannot count)."""
    from ticketstream.schemas.deadletter import ReasonCode
    from ticketstream.schemas.events import Category, Channel, EventType, Grade, Team

    teams = [t.value for t in Team] + ["unrouted"]
    for event_type in EventType:
        INTAKE_ACCEPTED.labels(type=event_type.value)
    for channel in Channel:
        COMPLAINTS.labels(channel=channel.value)
    for stage in ("intake", "triage", "tickets", "incidents", "breaches"):
        for reason in ReasonCode:
            DEADLETTERS.labels(stage=stage, reason=reason.value)
    for grade in Grade:
        for category in Category:
            TRIAGED.labels(category=category.value, grade=grade.value)
        for team in teams:
            for stage in stages:
                for kind in ("warning", "breach", "met", "escalated"):
                    SLA_EVENTS.labels(stage=stage, kind=kind, grade=grade.value, team=team)
                for on_time in ("true", "false"):
                    SLA_COMPLETIONS.labels(stage=stage, grade=grade.value, team=team, on_time=on_time)
    for team in teams:
        ROUTED.labels(team=team)
        TICKETS_CLOSED.labels(team=team)


def scrape(port: int, name: str, labels: dict[str, str] | None = None, host: str = "127.0.0.1") -> float | None:
    """Sum of one metric's samples on a worker's /metrics that carry all of `labels` (None if the
    worker does not answer): for the demo's progress line and for tests."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] != name:
            continue
        if labels and not all(f'{k}="{v}"' in head for k, v in labels.items()):
            continue
        total += float(value)
    return total
