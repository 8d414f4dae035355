"""The archive's database: SQLite (the embedded default) or PostgreSQL through one code path
(SQLAlchemy 2 Core), schema by the Alembic migrations in `migrations/`.

Writes are upserts keyed by the records' own ids (ON CONFLICT, which both databases speak):
tickets and incidents keep the row with the highest `state_version`, the append-only history
(events, SLA events, triage revisions) keeps the first copy of an id. A batch is one transaction,
so the archiver can commit its Kafka offsets once the database has committed, and anything
delivered again is harmless.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Engine, and_, create_engine, delete, event, func, inspect, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from ticketstream.archive.batch import Batch
from ticketstream.archive.schema import incidents, sla_events, ticket_events, ticket_revisions, ticket_stages, tickets

MIGRATIONS = Path(__file__).with_name("migrations")
TABLES = ("tickets", "ticket_stages", "ticket_revisions", "ticket_events", "sla_events", "incidents")


class ArchiveError(RuntimeError):
    """The archive cannot be used as asked (no schema, unreachable, unsupported URL)."""


def redacted(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL we cannot parse is shown by its scheme only
        return url.split(":", 1)[0] + ":..."


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create(url: str) -> Engine:
    """An engine for the URL; JSON columns are encoded with orjson (the json module was a tenth of
    the archiver's write time)."""
    parsed = make_url(url)
    json_options = {"json_serializer": _dumps, "json_deserializer": orjson.loads}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **json_options)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL: readers (reports, exports) never block the archiver, and a commit is one fsync
            # of the log; NORMAL sync is still durable across a process crash (kill -9).
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True, **json_options)
    raise ArchiveError(f"archive_db {redacted(url)}: only sqlite:/// and postgresql+psycopg:// URLs are supported")


@dataclass
class Store:
    engine: Engine
    _statements: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, url: str) -> Store:
        return cls(create(url))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # -- schema ---------------------------------------------------------------------------------
    def migrate(self) -> str:
        """Upgrade the schema to the newest migration; returns the revision now in place."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
        return self.revision() or "none"

    def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def require_schema(self) -> None:
        """A clear error when the archive was never created (commands that only read)."""
        if not inspect(self.engine).has_table("tickets"):
            raise ArchiveError(
                f"{redacted(str(self.engine.url))} holds no archive yet: run `ticketstream archive "
                "migrate` or start `ticketstream archive`"
            )

    # -- writes ---------------------------------------------------------------------------------
    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def _statement(self, name: str) -> Any:
        stmt = self._statements.get(name)
        if stmt is not None:
            return stmt
        if name in ("tickets", "incidents"):
            table = tickets if name == "tickets" else incidents
            key = "ticket_id" if name == "tickets" else "id"
            ins = self._insert(table)
            keep = {"satisfaction_score"}  # maintained from the event history, not from the state
            stmt = ins.on_conflict_do_update(
                index_elements=[key],
                set_={c.name: ins.excluded[c.name] for c in table.columns if c.name != key and c.name not in keep},
                where=ins.excluded.state_version >= table.c.state_version,
            )
        elif name == "ticket_stages":
            ins = self._insert(ticket_stages)
            stmt = ins.on_conflict_do_update(
                index_elements=["ticket_id", "cycle", "stage"],
                set_={c.name: ins.excluded[c.name] for c in ticket_stages.columns if not c.primary_key},
                where=ins.excluded.state_version >= ticket_stages.c.state_version,
            )
        else:
            table = {"ticket_revisions": ticket_revisions, "ticket_events": ticket_events, "sla_events": sla_events}[
                name
            ]
            stmt = self._insert(table).on_conflict_do_nothing()
        self._statements[name] = stmt
        return stmt

    def write(self, batch: Batch, now: datetime | None = None) -> dict[str, int]:
        """Write a batch in one transaction; returns the rows sent per table."""
        if batch._states:  # noqa: SLF001
            raise ValueError("Batch.finish() maps the states before a write")
        now = now or datetime.now(UTC)
        written: dict[str, int] = {}
        ticket_rows = [dict(t.ticket, archived_at=now) for t in batch.tickets.values()]
        stage_rows = [
            dict(s, state_version=t.ticket["state_version"]) for t in batch.tickets.values() for s in t.stages
        ]
        parts = [
            ("tickets", ticket_rows),
            ("ticket_stages", stage_rows),
            ("ticket_revisions", list(batch.revisions.values())),
            ("ticket_events", [dict(e, archived_at=now) for e in batch.events.values()]),
            ("sla_events", [dict(s, archived_at=now) for s in batch.sla.values()]),
            ("incidents", [dict(i, archived_at=now) for i in batch.incidents.values()]),
        ]
        with self.engine.begin() as conn:
            for name, rows in parts:
                if rows:
                    conn.execute(self._statement(name), rows)
                    written[name] = len(rows)
            if batch.surveyed:
                ids = sorted(batch.surveyed)
                latest = (
                    select(ticket_events.c.score)
                    .where(ticket_events.c.ticket_id == tickets.c.ticket_id, ticket_events.c.score.is_not(None))
                    .order_by(ticket_events.c.occurred_at.desc(), ticket_events.c.event_id.desc())
                    .limit(1)
                    .scalar_subquery()
                )
                for start in range(0, len(ids), 500):
                    conn.execute(
                        update(tickets)
                        .where(tickets.c.ticket_id.in_(ids[start : start + 500]))
                        .values(satisfaction_score=latest)
                    )
        return written

    # -- reads ----------------------------------------------------------------------------------
    def counts(self, *names: str) -> dict[str, int]:
        """Rows per table (all tables, or those named)."""
        tables = dict(
            zip(TABLES, (tickets, ticket_stages, ticket_revisions, ticket_events, sla_events, incidents), strict=True)
        )
        with self.engine.connect() as conn:
            return {
                name: conn.execute(select(func.count()).select_from(tables[name])).scalar_one()
                for name in names or TABLES
            }

    def ticket(self, ticket_id: str) -> dict[str, Any] | None:
        """The ticket with its stages, triage revisions, events and SLA events (timeline)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(tickets).where(tickets.c.ticket_id == ticket_id)).mappings().first()
            events = (
                conn.execute(
                    select(ticket_events)
                    .where(ticket_events.c.ticket_id == ticket_id)
                    .order_by(ticket_events.c.occurred_at, ticket_events.c.event_id)
                )
                .mappings()
                .all()
            )
            if row is None and not events:
                return None
            return {
                "ticket": dict(row) if row else None,
                "stages": [
                    dict(r)
                    for r in conn.execute(
                        select(ticket_stages)
                        .where(ticket_stages.c.ticket_id == ticket_id)
                        .order_by(ticket_stages.c.cycle, ticket_stages.c.started_at)
                    ).mappings()
                ],
                "revisions": [
                    dict(r)
                    for r in conn.execute(
                        select(ticket_revisions)
                        .where(ticket_revisions.c.ticket_id == ticket_id)
                        .order_by(ticket_revisions.c.revision)
                    ).mappings()
                ],
                "events": [dict(r) for r in events],
                "sla_events": [
                    dict(r)
                    for r in conn.execute(
                        select(sla_events)
                        .where(sla_events.c.ticket_id == ticket_id)
                        .order_by(sla_events.c.fired_at, sla_events.c.id)
                    ).mappings()
                ],
            }

    def _filtered(
        self,
        *,
        team: str | None = None,
        grade: str | None = None,
        category: str | None = None,
        status: str | None = None,
        breached: bool | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Any:
        query = select(tickets)
        for column, value in ((tickets.c.team, team), (tickets.c.grade, grade), (tickets.c.status, status)):
            if value:
                query = query.where(column == value)
        if category:
            # a top-level category ("technical") selects its two-level codes
            query = query.where(or_(tickets.c.category == category, tickets.c.category.like(f"{category}.%")))
        if breached is not None:
            query = query.where(tickets.c.breaches > 0 if breached else tickets.c.breaches == 0)
        if since:
            query = query.where(tickets.c.received_at >= since)
        if until:
            query = query.where(tickets.c.received_at < until)
        return query

    def list(self, limit: int | None = 50, **filters: Any) -> list[dict[str, Any]]:
        query = self._filtered(**filters).order_by(tickets.c.received_at.desc(), tickets.c.ticket_id).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def stream(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every matching ticket in received order, fetched in chunks (server-side cursor on
        PostgreSQL), so an export of millions of rows runs in constant memory."""
        query = self._filtered(**filters).order_by(tickets.c.received_at, tickets.c.ticket_id)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=1000).execute(query).mappings():
                yield dict(row)

    def count(self, **filters: Any) -> int:
        with self.engine.connect() as conn:
            count: int = conn.execute(
                select(func.count()).select_from(self._filtered(**filters).subquery())
            ).scalar_one()
            return count

    def kpi_rows(self, since: datetime, until: datetime) -> dict[str, builtins.list[dict[str, Any]]]:
        """The rows the KPI computation needs: tickets received in the period plus those still
        open at its end (the backlog), their stages, the surveys and incidents of the period."""
        cols = [
            tickets.c[n]
            for n in (
                "ticket_id",
                "received_at",
                "status",
                "cycle",
                "grade",
                "category",
                "team",
                "channel",
                "province",
                "city",
                "repeat_count",
                "incident_id",
                "closed_at",
                "escalation_tier",
                "breaches",
            )
        ]
        in_period = and_(tickets.c.received_at >= since, tickets.c.received_at < until)
        still_open = and_(
            tickets.c.received_at < since, or_(tickets.c.closed_at.is_(None), tickets.c.closed_at >= until)
        )
        with self.engine.connect() as conn:
            ticket_list = [dict(r) for r in conn.execute(select(*cols).where(or_(in_period, still_open))).mappings()]
            stages = [
                dict(r)
                for r in conn.execute(
                    select(ticket_stages)
                    .join(tickets, tickets.c.ticket_id == ticket_stages.c.ticket_id)
                    .where(in_period)
                ).mappings()
            ]
            surveys = [
                dict(r)
                for r in conn.execute(
                    select(
                        ticket_events.c.ticket_id,
                        ticket_events.c.score,
                        ticket_events.c.occurred_at,
                        tickets.c.team,
                        tickets.c.category,
                        tickets.c.province,
                        tickets.c.city,
                        tickets.c.channel,
                    )
                    .join(tickets, tickets.c.ticket_id == ticket_events.c.ticket_id, isouter=True)
                    .where(
                        ticket_events.c.score.is_not(None),
                        ticket_events.c.occurred_at >= since,
                        ticket_events.c.occurred_at < until,
                    )
                ).mappings()
            ]
            incident_list = [
                dict(r)
                for r in conn.execute(
                    select(incidents).where(incidents.c.opened_at >= since, incidents.c.opened_at < until)
                ).mappings()
            ]
        return {"tickets": ticket_list, "stages": stages, "surveys": surveys, "incidents": incident_list}

    # -- retention ------------------------------------------------------------------------------
    def purge(self, cutoff: datetime, anonymise: bool = False, dry_run: bool = False) -> dict[str, int]:
        """Delete (or strip the personal data of) tickets received before `cutoff`, with their
        history; incidents opened before it and history rows of tickets the archive never got a
        state for are deleted too. Returns the rows affected per table; `dry_run` rolls back."""
        old = select(tickets.c.ticket_id).where(tickets.c.received_at < cutoff)
        counts: dict[str, int] = {}
        with self.engine.connect() as conn:
            trans = conn.begin()
            if anonymise:
                personal = or_(
                    *(
                        tickets.c[n].is_not(None)
                        for n in (
                            "customer_id",
                            "customer_name",
                            "customer_phone",
                            "customer_id_number",
                            "address",
                            "content",
                            "pii",
                        )
                    )
                )
                counts["tickets"] = conn.execute(
                    update(tickets)
                    .where(tickets.c.received_at < cutoff, personal)
                    .values(
                        customer_id=None,
                        customer_name=None,
                        customer_phone=None,
                        customer_id_number=None,
                        address=None,
                        content=None,
                        pii=None,
                    )
                ).rowcount
                counts["ticket_events"] = conn.execute(
                    update(ticket_events)
                    .where(
                        ticket_events.c.occurred_at < cutoff,
                        or_(ticket_events.c.data.is_not(None), ticket_events.c.pii.is_not(None)),
                    )
                    .values(data=None, pii=None)
                ).rowcount
            else:
                for name, table, when in (
                    ("ticket_stages", ticket_stages, None),
                    ("ticket_revisions", ticket_revisions, None),
                    ("ticket_events", ticket_events, ticket_events.c.occurred_at),
                    ("sla_events", sla_events, sla_events.c.fired_at),
                ):
                    condition: ColumnElement[bool] = table.c.ticket_id.in_(old)
                    if when is not None:  # and history of tickets whose state never arrived
                        orphan = and_(when < cutoff, ~table.c.ticket_id.in_(select(tickets.c.ticket_id)))
                        condition = or_(condition, orphan)
                    counts[name] = conn.execute(delete(table).where(condition)).rowcount
                counts["tickets"] = conn.execute(delete(tickets).where(tickets.c.received_at < cutoff)).rowcount
                counts["incidents"] = conn.execute(delete(incidents).where(incidents.c.opened_at < cutoff)).rowcount
            if dry_run:
                trans.rollback()
            else:
                trans.commit()
        return counts
