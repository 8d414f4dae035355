"""The first archive schema: tickets, their stages and triage revisions, the event history,
SLA events and incidents.

Written out column by column rather than from `schema.metadata`: a migration must keep creating
the schema of its own time even after the metadata moves on.

Revision ID: 0001
Revises:
Create Date: 2026-05-20
"""

import sqlalchemy as sa
from alembic import op

from ticketstream.archive.schema import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = 255


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("ticket_id", sa.String(ID), primary_key=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("cycle", sa.Integer, nullable=False),
        sa.Column("grade", sa.String(4)),
        sa.Column("content_grade", sa.String(4)),
        sa.Column("category", sa.String(40)),
        sa.Column("confidence", sa.Float),
        sa.Column("manual_triage", sa.Boolean),
        sa.Column("team", sa.String(40)),
        sa.Column("queue", sa.String(ID)),
        sa.Column("escalation_tier", sa.Integer),
        sa.Column("owner", sa.String(ID)),
        sa.Column("incident_id", sa.String(ID)),
        sa.Column("linked_ticket_id", sa.String(ID)),
        sa.Column("repeat_count", sa.Integer),
        sa.Column("revision", sa.Integer),
        sa.Column("channel", sa.String(40)),
        sa.Column("service_type", sa.String(40)),
        sa.Column("province", sa.String(200)),
        sa.Column("city", sa.String(200)),
        sa.Column("customer_id", sa.String(ID)),
        sa.Column("customer_tier", sa.String(20)),
        sa.Column("customer_name", sa.String(ID)),
        sa.Column("customer_phone", sa.String(ID)),
        sa.Column("customer_id_number", sa.String(ID)),
        sa.Column("address", sa.String(1000)),
        sa.Column("content", sa.Text),
        sa.Column("pii", sa.Text),
        sa.Column("received_at", UtcDateTime),
        sa.Column("first_response_at", UtcDateTime),
        sa.Column("resolved_at", UtcDateTime),
        sa.Column("closed_at", UtcDateTime),
        sa.Column("last_event_at", UtcDateTime),
        sa.Column("breaches", sa.Integer, nullable=False),
        sa.Column("event_count", sa.Integer, nullable=False),
        sa.Column("overrides", sa.JSON),
        sa.Column("satisfaction_score", sa.Integer),
        sa.Column("state_version", sa.BigInteger, nullable=False),
        sa.Column("src_partition", sa.Integer, nullable=False),
        sa.Column("src_offset", sa.BigInteger, nullable=False),
        sa.Column("archived_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_tickets_received_at", "tickets", ["received_at"])
    op.create_index("ix_tickets_team_grade", "tickets", ["team", "grade"])
    op.create_index("ix_tickets_status", "tickets", ["status"])
    op.create_table(
        "ticket_stages",
        sa.Column("ticket_id", sa.String(ID), primary_key=True),
        sa.Column("cycle", sa.Integer, primary_key=True),
        sa.Column("stage", sa.String(40), primary_key=True),
        sa.Column("started_at", UtcDateTime),
        sa.Column("due_at", UtcDateTime),
        sa.Column("met_at", UtcDateTime),
        sa.Column("cancelled_at", UtcDateTime),
        sa.Column("breached", sa.Boolean, nullable=False),
        sa.Column("max_warning", sa.Integer),
        sa.Column("on_time", sa.Boolean),
        sa.Column("state_version", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ticket_revisions",
        sa.Column("ticket_id", sa.String(ID), primary_key=True),
        sa.Column("revision", sa.Integer, primary_key=True),
        sa.Column("category", sa.String(40)),
        sa.Column("grade", sa.String(4)),
        sa.Column("team", sa.String(40)),
        sa.Column("queue", sa.String(ID)),
        sa.Column("escalation_tier", sa.Integer),
        sa.Column("incident_id", sa.String(ID)),
        sa.Column("note", sa.String(500)),
        sa.Column("seen_at", UtcDateTime),
    )
    op.create_table(
        "ticket_events",
        sa.Column("event_id", sa.String(ID), primary_key=True),
        sa.Column("ticket_id", sa.String(ID), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("occurred_at", UtcDateTime, nullable=False),
        sa.Column("agent", sa.String(ID)),
        sa.Column("score", sa.Integer),
        sa.Column("data", sa.JSON),
        sa.Column("pii", sa.Text),
        sa.Column("src_partition", sa.Integer, nullable=False),
        sa.Column("src_offset", sa.BigInteger, nullable=False),
        sa.Column("archived_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_ticket_events_ticket", "ticket_events", ["ticket_id", "occurred_at"])
    op.create_index("ix_ticket_events_type_time", "ticket_events", ["type", "occurred_at"])
    op.create_table(
        "sla_events",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("ticket_id", sa.String(ID), nullable=False),
        sa.Column("cycle", sa.Integer, nullable=False),
        sa.Column("stage", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("percent", sa.Integer),
        sa.Column("due_at", UtcDateTime),
        sa.Column("fired_at", UtcDateTime, nullable=False),
        sa.Column("retroactive", sa.Boolean, nullable=False),
        sa.Column("grade", sa.String(4)),
        sa.Column("team", sa.String(40)),
        sa.Column("from_tier", sa.Integer),
        sa.Column("to_tier", sa.Integer),
        sa.Column("archived_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_sla_events_ticket", "sla_events", ["ticket_id"])
    op.create_index("ix_sla_events_fired", "sla_events", ["fired_at"])
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("city", sa.String(200)),
        sa.Column("category", sa.String(40)),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("baseline", sa.Float),
        sa.Column("first_at", UtcDateTime),
        sa.Column("latest_at", UtcDateTime),
        sa.Column("opened_at", UtcDateTime, nullable=False),
        sa.Column("closed_at", UtcDateTime),
        sa.Column("state_version", sa.BigInteger, nullable=False),
        sa.Column("src_partition", sa.Integer, nullable=False),
        sa.Column("src_offset", sa.BigInteger, nullable=False),
        sa.Column("archived_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_incidents_opened", "incidents", ["opened_at"])


def downgrade() -> None:
    for table in ("incidents", "sla_events", "ticket_events", "ticket_revisions", "ticket_stages", "tickets"):
        op.drop_table(table)
