"""Archive write throughput next to a bare bulk insert of the same rows, same run, both stores.

    .venv/bin/python tests/benchmarks/bench_archive.py [--tickets 5000] [--repeat 3] [--batch 2000]

Input: the records a worker publishes for `--tickets` simulated ticket lives (tests/archive_feed:
every state after every event, the event history, the SLA events), as raw bytes.
Measured: the archiver's path without Kafka — decode, map, protect personal data (encrypt mode,
Fernet), de-duplicate per batch, upsert (ON CONFLICT) one transaction per `--batch` records —
into a freshly migrated archive. Baseline: a plain INSERT (no conflict clause) of exactly the rows
that path wrote, in the same transactions, into another freshly migrated archive. Rows/s of each
and their ratio (goal >= 0.5), for SQLite (a file, WAL) and PostgreSQL (a throwaway cluster on
loopback with fsync on, as in production). Median of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from sqlalchemy import insert  # noqa: E402

from tests.archive_feed import feed  # noqa: E402
from tests.postgres import fresh_database, postgres_server  # noqa: E402
from ticketstream.archive.batch import Batch  # noqa: E402
from ticketstream.archive.pii import Protector  # noqa: E402
from ticketstream.archive.schema import metadata  # noqa: E402
from ticketstream.archive.store import Store  # noqa: E402


def archive(
    store: Store, records: list[tuple[str, bytes]], batch_size: int, protector: Protector
) -> tuple[float, int, list[dict[str, list[dict]]]]:
    """Seconds, rows written, and the rows per table of every batch (for the baseline)."""
    written: list[dict[str, list[dict]]] = []
    rows = 0
    started = time.perf_counter()
    for start in range(0, len(records), batch_size):
        batch = Batch(protector)
        for offset, (topic, value) in enumerate(records[start : start + batch_size], start):
            batch.add(topic, value, 0, offset)
        batch.finish()
        counts = store.write(batch)
        rows += sum(counts.values())
        written.append(batch_rows(batch))
    return time.perf_counter() - started, rows, written


def batch_rows(batch: Batch) -> dict[str, list[dict]]:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return {
        "tickets": [dict(t.ticket, archived_at=now) for t in batch.tickets.values()],
        "ticket_stages": [
            dict(s, state_version=t.ticket["state_version"]) for t in batch.tickets.values() for s in t.stages
        ],
        "ticket_revisions": list(batch.revisions.values()),
        "ticket_events": [dict(e, archived_at=now) for e in batch.events.values()],
        "sla_events": [dict(s, archived_at=now) for s in batch.sla.values()],
    }


def bare_insert(store: Store, batches: list[dict[str, list[dict]]]) -> tuple[float, int]:
    """The same rows with plain INSERTs, one transaction per batch. Tickets and stages that a
    later batch supersedes are inserted once (their last version), revisions once (their first),
    as INSERT can neither update nor skip."""
    last_ticket: dict[str, int] = {}
    first_revision: dict[tuple[str, int], int] = {}
    for i, b in enumerate(batches):
        for t in b["tickets"]:
            last_ticket[t["ticket_id"]] = i
        for r in b["ticket_revisions"]:
            first_revision.setdefault((r["ticket_id"], r["revision"]), i)
    tables = metadata.tables
    rows = 0
    started = time.perf_counter()
    with store.engine.connect() as conn:
        for i, b in enumerate(batches):
            with conn.begin():
                for name, items in b.items():
                    if name in ("tickets", "ticket_stages"):
                        items = [r for r in items if last_ticket[r["ticket_id"]] == i]
                    elif name == "ticket_revisions":
                        items = [r for r in items if first_revision[r["ticket_id"], r["revision"]] == i]
                    if items:
                        conn.execute(insert(tables[name]), items)
                        rows += len(items)
    return time.perf_counter() - started, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    f = feed(args.tickets)
    # interleaved as the archiver sees them: the topics' records in publish order, round robin
    records: list[tuple[str, bytes]] = []
    streams = {topic: iter(items) for topic, items in f.messages.items()}
    while streams:
        for topic in list(streams):
            item = next(streams[topic], None)
            if item is None:
                del streams[topic]
            else:
                records.append((topic, item[1]))
    protector = Protector("encrypt", Protector.generate_key())
    print(f"{args.tickets} tickets, {len(records)} records, batches of {args.batch}; {os.cpu_count()} CPUs")
    with postgres_server(fsync=True) as admin:
        with tempfile.TemporaryDirectory() as tmp:
            for kind in ("sqlite", "postgresql"):
                results = []
                for run in range(args.repeat):
                    urls = (
                        [f"sqlite:///{tmp}/{run}-{x}.db" for x in ("a", "b")]
                        if kind == "sqlite"
                        else [fresh_database(admin), fresh_database(admin)]
                    )
                    archive_store, bare_store = Store.open(urls[0]), Store.open(urls[1])
                    archive_store.migrate()
                    bare_store.migrate()
                    seconds, rows, batches = archive(archive_store, records, args.batch, protector)
                    bare_seconds, bare_rows = bare_insert(bare_store, batches)
                    results.append((rows / seconds, bare_rows / bare_seconds, records and len(records) / seconds))
                    archive_store.engine.dispose()
                    bare_store.engine.dispose()
                archived = statistics.median(r[0] for r in results)
                bare = statistics.median(r[1] for r in results)
                per_record = statistics.median(r[2] for r in results)
                print(
                    f"{kind:<10} archive {archived:>9,.0f} rows/s ({per_record:,.0f} records/s)   "
                    f"bare insert {bare:>9,.0f} rows/s   ratio {archived / bare:.2f}"
                    f"   (runs: {', '.join(f'{a / b:.2f}' for a, b, _ in results)})"
                )


if __name__ == "__main__":
    main()
