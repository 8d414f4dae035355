"""The archive's tables (SQLAlchemy Core), for queries and writes. The database itself is
created and upgraded only by the Alembic migrations in `migrations/`; a test compares the
migrated schema with these definitions so the two cannot drift apart."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both stores: `timestamptz` on PostgreSQL; on SQLite, which has no
    time type, fixed-width UTC text 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's own SQLite format),
    so text order is time order and `WHERE received_at < :t` compares correctly. The text is
    made by `isoformat` here rather than by SQLAlchemy's SQLite DATETIME formatter, which cost a
    tenth of the archiver's write time. Values come back aware (UTC) from either store."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        return dialect.type_descriptor(String(26)) if dialect.name == "sqlite" else self.impl

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the archive stores aware datetimes only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return value

    def process_result_value(self, value: datetime | str | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()
ID = 255

tickets = Table(
    "tickets",
    metadata,
    Column("ticket_id", String(ID), primary_key=True),
    Column("status", String(32), nullable=False),
    Column("cycle", Integer, nullable=False),
    Column("grade", String(4)),
    Column("content_grade", String(4)),
    Column("category", String(40)),
    Column("confidence", Float),
    Column("manual_triage", Boolean),
    Column("team", String(40)),
    Column("queue", String(ID)),
    Column("escalation_tier", Integer),
    Column("owner", String(ID)),
    Column("incident_id", String(ID)),
    Column("linked_ticket_id", String(ID)),
    Column("repeat_count", Integer),
    Column("revision", Integer),
    Column("channel", String(40)),
    Column("service_type", String(40)),
    Column("province", String(200)),
    Column("city", String(200)),
    Column("customer_id", String(ID)),
    Column("customer_tier", String(20)),
    Column("customer_name", String(ID)),
    Column("customer_phone", String(ID)),
    Column("customer_id_number", String(ID)),
    Column("address", String(1000)),
    Column("content", Text),
    Column("pii", Text),
    Column("received_at", UtcDateTime),
    Column("first_response_at", UtcDateTime),
    Column("resolved_at", UtcDateTime),
    Column("closed_at", UtcDateTime),
    Column("last_event_at", UtcDateTime),
    Column("breaches", Integer, nullable=False),
    Column("event_count", Integer, nullable=False),
    Column("overrides", JSON),
    Column("satisfaction_score", Integer),
    Column("state_version", BigInteger, nullable=False),
    Column("src_partition", Integer, nullable=False),
    Column("src_offset", BigInteger, nullable=False),
    Column("archived_at", UtcDateTime, nullable=False),
    Index("ix_tickets_received_at", "received_at"),
    Index("ix_tickets_team_grade", "team", "grade"),
    Index("ix_tickets_status", "status"),
)

ticket_stages = Table(
    "ticket_stages",
    metadata,
    Column("ticket_id", String(ID), primary_key=True),
    Column("cycle", Integer, primary_key=True),
    Column("stage", String(40), primary_key=True),
    Column("started_at", UtcDateTime),
    Column("due_at", UtcDateTime),
    Column("met_at", UtcDateTime),
    Column("cancelled_at", UtcDateTime),
    Column("breached", Boolean, nullable=False),
    Column("max_warning", Integer),
    Column("on_time", Boolean),
    Column("state_version", BigInteger, nullable=False),
)

ticket_revisions = Table(
    "ticket_revisions",
    metadata,
    Column("ticket_id", String(ID), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("category", String(40)),
    Column("grade", String(4)),
    Column("team", String(40)),
    Column("queue", String(ID)),
    Column("escalation_tier", Integer),
    Column("incident_id", String(ID)),
    Column("note", String(500)),
    Column("seen_at", UtcDateTime),
)

ticket_events = Table(
    "ticket_events",
    metadata,
    Column("event_id", String(ID), primary_key=True),
    Column("ticket_id", String(ID), nullable=False),
    Column("type", String(64), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("agent", String(ID)),
    Column("score", Integer),
    Column("data", JSON),
    Column("pii", Text),
    Column("src_partition", Integer, nullable=False),
    Column("src_offset", BigInteger, nullable=False),
    Column("archived_at", UtcDateTime, nullable=False),
    Index("ix_ticket_events_ticket", "ticket_id", "occurred_at"),
    Index("ix_ticket_events_type_time", "type", "occurred_at"),
)

sla_events = Table(
    "sla_events",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("ticket_id", String(ID), nullable=False),
    Column("cycle", Integer, nullable=False),
    Column("stage", String(40), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("percent", Integer),
    Column("due_at", UtcDateTime),
    Column("fired_at", UtcDateTime, nullable=False),
    Column("retroactive", Boolean, nullable=False),
    Column("grade", String(4)),
    Column("team", String(40)),
    Column("from_tier", Integer),
    Column("to_tier", Integer),
    Column("archived_at", UtcDateTime, nullable=False),
    Index("ix_sla_events_ticket", "ticket_id"),
    Index("ix_sla_events_fired", "fired_at"),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("action", String(10), nullable=False),
    Column("city", String(200)),
    Column("category", String(40)),
    Column("count", Integer, nullable=False),
    Column("baseline", Float),
    Column("first_at", UtcDateTime),
    Column("latest_at", UtcDateTime),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("closed_at", UtcDateTime),
    Column("state_version", BigInteger, nullable=False),
    Column("src_partition", Integer, nullable=False),
    Column("src_offset", BigInteger, nullable=False),
    Column("archived_at", UtcDateTime, nullable=False),
    Index("ix_incidents_opened", "opened_at"),
)
