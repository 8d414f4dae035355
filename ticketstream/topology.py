"""The topics of the system: names, keys, partitions, cleanup policies (the topic flow of the README).

Topics are created up front by `ticketstream topics create`, never by accident on first use,
so that partition counts, replication and cleanup are deliberate (ARCHITECTURE pitfall 7).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ticketstream.schemas.events import Team
from ticketstream.settings import Settings

DAY_MS = 24 * 3600 * 1000

INBOUND = "tickets.inbound"
KEYED = "tickets.keyed"
ACCEPTED = "tickets.accepted"
DLQ = "tickets.dlq"
TRIAGED = "tickets.triaged"
CUSTOMER_HISTORY = "customers.history"
SLA_EVENTS = "sla.events"
SLA_TICKS = "sla.ticks"
SLA_BY_TEAM = "sla.by_team"
INCIDENTS = "incidents"
INCIDENTS_BY_KEY = "incidents.by_key"
INCIDENT_LINKS = "incidents.links"
STATE = "tickets.state"
ALERTS = "alerts"

# Faust tables, by name; their changelog topics are `<app_id>-<table>-changelog`.
TABLE_TICKETS = "tickets"
TABLE_INCIDENT_KEYS = "incident_keys"
TABLE_BREACHES_5M = "breaches_5m"
TABLE_BREACHES_1H = "breaches_1h"
TABLES: dict[str, str] = {
    TABLE_TICKETS: "compact",
    TABLE_INCIDENT_KEYS: "compact",
    TABLE_BREACHES_5M: "compact,delete",
    TABLE_BREACHES_1H: "compact,delete",
}
WINDOWED_RETENTION_MS = {TABLE_BREACHES_5M: 3 * 3600 * 1000, TABLE_BREACHES_1H: 3 * DAY_MS}


def queue_topic(team: Team | str) -> str:
    return f"queue.{Team(team).value}"


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its logical name, what it is keyed by, and its Kafka configuration."""

    name: str
    key: str
    purpose: str
    cleanup_policy: str = "delete"
    retention_ms: int | None = 7 * DAY_MS
    extra: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        cfg = {"cleanup.policy": self.cleanup_policy, **self.extra}
        if self.retention_ms is not None:
            cfg["retention.ms"] = str(self.retention_ms)
        return cfg


def system_topics() -> list[TopicSpec]:
    """Every topic ticketstream reads or writes, in flow order (logical names, prefix not applied)."""
    specs = [
        TopicSpec(INBOUND, "ticket_id", "every inbound event from channel and handling systems"),
        TopicSpec(
            KEYED,
            "ticket_id",
            "internal: validated events that arrived off their ticket's home partition, re-keyed by the "
            "worker's murmur2 partitioner to be de-duplicated there",
            retention_ms=1 * DAY_MS,
        ),
        TopicSpec(
            DLQ, "dead-letter id", "inputs that could not be accepted, with reason and source", retention_ms=30 * DAY_MS
        ),
        TopicSpec(
            ACCEPTED, "ticket_id", "validated, de-duplicated events: the audit history", retention_ms=90 * DAY_MS
        ),
        TopicSpec(
            CUSTOMER_HISTORY,
            "customer_id",
            "internal: each complaint's entry in its customer's history, read by every worker for repeat "
            "detection (at least the 30-day repeat window)",
            retention_ms=35 * DAY_MS,
        ),
        TopicSpec(TRIAGED, "ticket_id", "classified, graded and routed complaints", retention_ms=30 * DAY_MS),
        *[
            TopicSpec(queue_topic(team), "ticket_id", f"work queue of team {team.value}", retention_ms=30 * DAY_MS)
            for team in Team
        ],
        TopicSpec(
            SLA_EVENTS, "ticket_id", "SLA warnings, breaches, met and escalation events", retention_ms=30 * DAY_MS
        ),
        TopicSpec(
            SLA_TICKS,
            "ticket_id",
            "internal: wake-ups from the deadline index to the ticket's owner",
            retention_ms=1 * DAY_MS,
        ),
        TopicSpec(
            SLA_BY_TEAM,
            "team|grade|stage|kind",
            "breaches and at-risk warnings re-keyed for the windowed counts",
            retention_ms=1 * DAY_MS,
        ),
        TopicSpec(INCIDENTS_BY_KEY, "city", "new complaints re-keyed for incident detection", retention_ms=1 * DAY_MS),
        TopicSpec(INCIDENTS, "incident_id", "mass-incident open/update/close records", retention_ms=90 * DAY_MS),
        TopicSpec(INCIDENT_LINKS, "ticket_id", "internal: tickets to link to an incident", retention_ms=7 * DAY_MS),
        TopicSpec(
            STATE,
            "ticket_id",
            "latest full ticket record, read by archive consumers",
            cleanup_policy="compact",
            retention_ms=None,
            extra={"min.compaction.lag.ms": "60000"},
        ),
        TopicSpec(ALERTS, "alert fingerprint", "alerts for on-call (Alertmanager bridge)", retention_ms=7 * DAY_MS),
    ]
    return specs


def replication(brokers: int, configured: int | None = None) -> tuple[int, int | None]:
    """(replication factor, min.insync.replicas or None for the broker default) of new topics.

    Unless configured, min(3, brokers): one copy per broker up to three, so a three-node
    cluster survives a dead broker without losing a message (acks=all waits for the in-sync
    replicas) and a single broker still works. At RF 3, min.insync.replicas 2: a write is
    acknowledged by two copies, and one broker may be down while producers go on."""
    rf = configured if configured is not None else max(1, min(3, brokers))
    return rf, (2 if rf >= 3 else None)


def changelog_topics(settings: Settings) -> list[TopicSpec]:
    """The changelog topics of the worker's Faust tables (named by Faust after the app id)."""
    return [
        TopicSpec(
            f"{settings.app_id}-{table}-changelog",
            "table key",
            f"changelog of table {table}",
            cleanup_policy=policy,
            retention_ms=WINDOWED_RETENTION_MS.get(table),
        )
        for table, policy in TABLES.items()
    ]
