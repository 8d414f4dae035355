"""`ticketstream archive ...` and `ticketstream tickets ...`: the archiver and the queries over
the archive. Kept apart from cli.py so the archive's commands read as one piece."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ticketstream.settings import Settings, SettingsError

CSV_COLUMNS = (
    "ticket_id",
    "status",
    "cycle",
    "received_at",
    "first_response_at",
    "resolved_at",
    "closed_at",
    "channel",
    "province",
    "city",
    "category",
    "grade",
    "content_grade",
    "team",
    "queue",
    "escalation_tier",
    "owner",
    "incident_id",
    "repeat_count",
    "breaches",
    "satisfaction_score",
    "customer_id",
    "customer_tier",
    "customer_name",
    "customer_phone",
    "content",
)


def _store(settings: Settings, args: argparse.Namespace, read_only: bool = True) -> Any:
    from ticketstream.archive.store import ArchiveError, Store

    store = Store.open(args.db or settings.archive_url)
    if read_only:
        try:
            store.require_schema()
        except ArchiveError as exc:
            raise SettingsError(str(exc)) from None
    return store


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def cmd_archive(
    args: argparse.Namespace,
    settings_of: Callable[[argparse.Namespace], Settings],
    connected: Callable[[Settings], Settings],
) -> int:
    settings = settings_of(args)
    if args.db:
        settings = settings.model_copy(update={"archive_db": args.db})
    if args.action == "keygen":
        from ticketstream.archive.pii import Protector

        print(Protector.generate_key())
        print(
            'set it as TICKETSTREAM_ARCHIVE_KEY (or archive_key in the config file) with archive_pii = "encrypt"; '
            "keep it in a secret store, not in the repository",
            file=sys.stderr,
        )
        return 0
    if args.action == "migrate":
        from ticketstream.archive.store import Store, redacted

        print(f"{redacted(settings.archive_url)}: schema at revision {Store.open(settings.archive_url).migrate()}")
        return 0
    if args.action == "purge":
        from ticketstream.archive.retention import cutoff, parse_age

        age = args.older_than or settings.archive_retention
        try:
            parse_age(age)
        except ValueError as exc:
            raise SettingsError(f"--older-than: {exc}") from None
        before = cutoff(datetime.now(UTC), age)
        counts = _store(settings, args).purge(before, anonymise=args.anonymise, dry_run=args.dry_run)
        verb = "would " if args.dry_run else ""
        verb += "anonymise" if args.anonymise else "delete"
        print(f"tickets received before {before.isoformat(timespec='seconds')} (older than {age}): {verb}")
        for table, count in counts.items():
            print(f"  {table:<18} {count}")
        return 0
    import logging

    from ticketstream.archive.pii import ArchiveKeyError
    from ticketstream.workers.archiver import run_archiver

    logging.basicConfig(
        level=settings.log_level.upper().replace("WARN", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    settings = connected(settings)
    if settings.archive_metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(settings.archive_metrics_port, addr=settings.web_host)
        except OSError as exc:
            raise SettingsError(
                f"archive_metrics_port {settings.archive_metrics_port}: cannot serve /metrics ({exc})"
            ) from None
    try:
        archiver = run_archiver(settings, max_idle_seconds=args.exit_when_idle)
    except ArchiveKeyError as exc:
        raise SettingsError(str(exc)) from None
    print(f"archiver stopped; {archiver.dead_letters} record(s) dead-lettered", file=sys.stderr)
    return 0


def _since_until(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    """A date or a local time is read in Beijing time, as the centres read their reports."""
    from ticketstream.archive.kpi import LOCAL
    from ticketstream.workers.cli import time_option

    return time_option("--since", args.since, LOCAL), time_option("--until", args.until, LOCAL)


def _show_time(value: Any) -> str:
    from ticketstream.archive.kpi import LOCAL

    return value.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else "-"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(f"{str(v):<{w}}" for v, w in zip(r, widths, strict=False)).rstrip() for r in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


FORMATS = {
    "show": ("table", "json"),
    "list": ("table", "jsonl"),
    "export": ("csv", "jsonl"),
    "report": ("text", "json", "html"),
}


def cmd_tickets(args: argparse.Namespace, settings_of: Callable[[argparse.Namespace], Settings]) -> int:
    args.format = args.format or FORMATS[args.action][0]
    if args.format not in FORMATS[args.action]:
        raise SettingsError(f"tickets {args.action} --format must be one of {', '.join(FORMATS[args.action])}")
    settings = settings_of(args)
    store = _store(settings, args)
    since, until = _since_until(args)
    if args.action == "show":
        return _show(store, settings, args)
    if args.action == "list":
        rows = store.list(
            limit=args.limit,
            team=args.team,
            grade=args.grade,
            category=args.category,
            status=args.status,
            breached=args.breached,
            since=since,
            until=until,
        )
        if args.format == "jsonl":
            for row in rows:
                row.pop("pii", None)
                print(json.dumps(row, ensure_ascii=False, default=_json_default))
            return 0
        print(
            _table(
                [
                    [
                        r["ticket_id"],
                        _show_time(r["received_at"]),
                        r["status"],
                        r["grade"] or "-",
                        r["category"] or "-",
                        r["team"] or "-",
                        r["channel"] or "-",
                        str(r["breaches"]),
                        str(r["satisfaction_score"] or "-"),
                    ]
                    for r in rows
                ],
                ["ticket", "received", "status", "grade", "category", "team", "channel", "breaches", "score"],
            )
        )
        print(f"{len(rows)} ticket(s)" + (f" (--limit {args.limit})" if len(rows) == args.limit else ""))
        return 0
    if args.action == "export":
        return _export(store, args, since, until)
    from ticketstream.archive import kpi, report

    until = until or datetime.now(UTC)
    since = since or until - timedelta(days=30)
    result = kpi.compute(store.kpi_rows(since, until), since, until, by=args.by)
    text = {"json": report.as_json, "html": report.as_html}.get(args.format, report.as_text)(result)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _show(store: Any, settings: Settings, args: argparse.Namespace) -> int:
    if not args.ticket_id:
        raise SettingsError("tickets show needs a ticket id")
    found = store.ticket(args.ticket_id)
    if found is None:
        print(f"ticket {args.ticket_id} is not in the archive", file=sys.stderr)
        return 1
    t = found["ticket"] or {}
    if args.reveal:
        from ticketstream.archive.pii import ArchiveKeyError, Protector

        try:
            protector = Protector("mask", settings.archive_key.get_secret_value() if settings.archive_key else None)
            personal = protector.reveal(
                {
                    "customer": {
                        "name": t.get("customer_name"),
                        "phone": t.get("customer_phone"),
                        "id_number": t.get("customer_id_number"),
                    },
                    "content": t.get("content"),
                    "address": t.get("address"),
                },
                t.get("pii"),
            )
            t.update(
                customer_name=personal["customer"].get("name"),
                customer_phone=personal["customer"].get("phone"),
                customer_id_number=personal["customer"].get("id_number"),
                content=personal.get("content"),
                address=personal.get("address"),
            )
            for e in found["events"]:
                e["data"] = protector.reveal(e["data"], e["pii"])
        except ArchiveKeyError as exc:
            raise SettingsError(str(exc)) from None
    if args.format == "json":
        for part in ("events",):
            for e in found[part]:
                e.pop("pii", None)
        t.pop("pii", None)
        print(json.dumps(found, ensure_ascii=False, default=_json_default, indent=2))
        return 0
    if t:
        fields = [
            ("ticket", t["ticket_id"]),
            ("status", f"{t['status']} (cycle {t['cycle']})"),
            ("received", _show_time(t["received_at"])),
            ("channel", t["channel"]),
            ("region", f"{t['province']} {t['city']}"),
            (
                "customer",
                f"{t['customer_id']} ({t['customer_tier']}) {t['customer_name'] or ''} "
                f"{t['customer_phone'] or ''} {t['customer_id_number'] or ''}".strip(),
            ),
            ("category", t["category"]),
            ("grade", f"{t['grade']} (content {t['content_grade']})"),
            ("team", f"{t['team']} (queue {t['queue']}, escalation tier {t['escalation_tier']})"),
            ("first contact", t["owner"]),
            ("incident", t["incident_id"] or "-"),
            ("repeat count", t["repeat_count"]),
            ("satisfaction", t["satisfaction_score"] or "-"),
            ("content", t["content"]),
        ]
        width = max(len(k) for k, _ in fields)
        print("\n".join(f"{k:<{width}}  {v}" for k, v in fields))
    if found["revisions"]:
        print("\ntriage revisions")
        print(
            _table(
                [
                    [
                        str(r["revision"]),
                        r["category"] or "-",
                        r["grade"] or "-",
                        r["team"] or "-",
                        str(r["escalation_tier"]),
                        r["note"] or "",
                    ]
                    for r in found["revisions"]
                ],
                ["rev", "category", "grade", "team", "tier", "note"],
            )
        )
    if found["stages"]:
        print("\nstages")
        print(
            _table(
                [
                    [
                        str(s["cycle"]),
                        s["stage"],
                        _show_time(s["started_at"]),
                        _show_time(s["due_at"]),
                        _show_time(s["met_at"]),
                        "breached" if s["breached"] else ("on time" if s["on_time"] else "-"),
                    ]
                    for s in found["stages"]
                ],
                ["cycle", "stage", "started", "due", "met", "result"],
            )
        )
    timeline = [
        (e["occurred_at"], "event", e["type"], e["agent"] or "", "" if e["score"] is None else f"score {e['score']}")
        for e in found["events"]
    ]
    timeline += [
        (
            s["fired_at"],
            "sla",
            f"{s['stage']} {s['kind']}" + (f" {s['percent']}%" if s["percent"] else ""),
            s["team"] or "",
            "retroactive" if s["retroactive"] else "",
        )
        for s in found["sla_events"]
    ]
    print("\ntimeline")
    print(
        _table(
            [
                [_show_time(at), kind, what, who, note]
                for at, kind, what, who, note in sorted(timeline, key=lambda x: x[0])
            ],
            ["time", "source", "what", "team/agent", "note"],
        )
    )
    return 0


def _export(store: Any, args: argparse.Namespace, since: datetime | None, until: datetime | None) -> int:
    out = open(args.out, "w", encoding="utf-8", newline="") if args.out else sys.stdout  # noqa: SIM115
    progress = sys.stderr.isatty()
    total = store.count(since=since, until=until) if progress else 0
    written = 0
    try:
        writer = csv.writer(out) if args.format == "csv" else None
        if writer:
            writer.writerow(CSV_COLUMNS)
        for row in store.stream(since=since, until=until):
            row.pop("pii", None)
            if writer:
                writer.writerow(
                    [
                        "" if row[c] is None else (row[c].isoformat() if isinstance(row[c], datetime) else row[c])
                        for c in CSV_COLUMNS
                    ]
                )
            else:
                out.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
            written += 1
            if progress and written % 1000 == 0:
                print(f"\rexported {written:,} of {total:,}", end="", file=sys.stderr, flush=True)
    except BrokenPipeError:  # the reader (head, less) has had enough
        return 0
    finally:
        if out is not sys.stdout:
            out.close()
    if progress or args.out:
        print(f"\rexported {written:,} ticket(s)" + " " * 20, file=sys.stderr)
    return 0


def register(
    sub: Any,
    add: Callable[[str, str, Any], argparse.ArgumentParser],
    settings_of: Callable[[argparse.Namespace], Settings],
    connected: Callable[[Settings], Settings],
) -> None:
    """Add the `archive` and `tickets` commands to the CLI's subparsers."""
    p = add(
        "archive",
        "archive tickets, their history, SLA events and incidents into SQLite or PostgreSQL; "
        "purge old records; migrate the schema",
        lambda a: cmd_archive(a, settings_of, connected),
    )
    p.add_argument(
        "action",
        nargs="?",
        default="run",
        choices=["run", "purge", "migrate", "keygen"],
        help="run (default): the archiver; purge: retention; migrate: create/upgrade the schema; "
        "keygen: a key for archive_pii = encrypt",
    )
    p.add_argument("--db", metavar="URL", help="archive database (default archive_db: sqlite under data_dir)")
    p.add_argument("--older-than", metavar="AGE", help="purge: e.g. 3y, 18m, 90d (default archive_retention, 3y)")
    p.add_argument(
        "--anonymise", action="store_true", help="purge: strip personal data and content, keep the KPI fields"
    )
    p.add_argument("--dry-run", action="store_true", help="purge: count what would go, change nothing")
    p.add_argument(
        "--exit-when-idle",
        type=float,
        metavar="SECONDS",
        help="run: stop after this many seconds without records (batch jobs, tests)",
    )

    p = add(
        "tickets", "query the archive: show one ticket, list, export, KPI report", lambda a: cmd_tickets(a, settings_of)
    )
    p.add_argument("action", choices=["show", "list", "export", "report"])
    p.add_argument("ticket_id", nargs="?", metavar="ID", help="show: the ticket")
    p.add_argument("--db", metavar="URL", help="archive database (default archive_db)")
    p.add_argument("--team")
    p.add_argument("--grade", choices=["L1", "L2", "L3", "L4"])
    p.add_argument("--category", help="a category code, or a top level such as technical")
    p.add_argument("--status")
    p.add_argument(
        "--breached",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="list: only tickets with (--breached) or without (--no-breached) a breach",
    )
    p.add_argument("--since", metavar="TIME", help="received at or after (ISO date/time; no offset: Beijing time)")
    p.add_argument("--until", metavar="TIME", help="received before (report default: now; since: 30 days earlier)")
    p.add_argument("--limit", type=int, default=50, help="list: at most this many (default 50)")
    p.add_argument("--by", choices=["team", "category", "region", "channel"], help="report: KPIs per group too")
    p.add_argument(
        "--format",
        default=None,
        choices=["table", "text", "json", "jsonl", "csv", "html"],
        help="show: table|json; list: table|jsonl; export: csv|jsonl; report: text|json|html",
    )
    p.add_argument("--out", metavar="FILE", help="export/report: write here instead of stdout")
    p.add_argument(
        "--reveal", action="store_true", help="show: decrypt personal data (archive_pii = encrypt; needs archive_key)"
    )
