"""The functional core's share of a worker's work per inbound event, without Kafka or Faust.

    .venv/bin/python tests/benchmarks/bench_core.py [--complaints 3000] [--repeat 3]

Runs on one core over `bench_pipeline.py`'s traffic (complaints with about four lifecycle events
each, fresh timestamps) what the worker's agents do per event besides moving bytes: intake's
validation, canonical form and fingerprint; the ticket's state loaded from and saved to JSON (as
the table does); triage of each complaint against the customer's history, applied to its ticket
in the same step, and its record and history entry encoded; the lifecycle event applied; the `tickets.state` view and every
revision encoded. The baseline in the same run is the cheapest part of it: validating each event
with pydantic. Prints µs per inbound event (median of the repeats) and the ratio to the
baseline. Set it against `bench_pipeline.py`'s worker CPU per inbound event to see the share
of the framework and the Kafka client.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.benchmarks.bench_pipeline import traffic  # noqa: E402
from ticketstream import intake as core  # noqa: E402
from ticketstream.engines import sla_engine, triage_engine  # noqa: E402
from ticketstream.intake import COMPLAINT_RECEIVED  # noqa: E402
from ticketstream.schemas.tickets import TRIAGED  # noqa: E402
from ticketstream.settings import Settings  # noqa: E402
from ticketstream.tickets.process import TicketProcess  # noqa: E402
from ticketstream.tickets.state import TicketState  # noqa: E402
from ticketstream.triage.history import CustomerHistories  # noqa: E402


def run_core(messages: list[tuple[bytes, bytes]], process: TicketProcess) -> float:
    """Seconds for the core's work on every message, with fresh tables."""
    table: dict[str, bytes] = {}
    histories = CustomerHistories(process.triage.repeat_window_days)

    def load(ticket_id: str) -> TicketState:
        stored = table.get(ticket_id)
        return TicketState.from_value(ticket_id, orjson.loads(stored) if stored else None)

    started = time.perf_counter()
    for offset, (key, raw) in enumerate(messages):
        now = time.time()
        item = core.checked(core.parse_event(raw, key))
        state = load(item.ticket_id)
        read_at = core.read_at("i", 0, offset)
        fp = core.fingerprint_of(item.event_id, item.body)
        if core.classify_repeat(state.seen, fp, read_at) != "new":
            continue
        state.seen[fp.event] = core.seen_entry(fp, read_at)
        table[item.ticket_id] = orjson.dumps(state.to_value())
        if item.type == COMPLAINT_RECEIVED:  # triaged where it is accepted, its entry remembered
            customer = item.customer_id or ""
            fx, record, entry = process.on_complaint(state, item.event, histories.of(customer), now)  # type: ignore[arg-type]
            histories.remember(customer, entry)
            TRIAGED.dump_json(record)  # its record for tickets.triaged and the team's queue
            orjson.dumps(list(entry))  # its entry for customers.history
        else:
            fx = process.on_lifecycle(state, item.event, now)  # type: ignore[arg-type]
        if fx.changed:
            table[item.ticket_id] = orjson.dumps(state.to_value())
        if fx.view is not None:
            orjson.dumps(fx.view)
        for revision in fx.revisions:
            TRIAGED.dump_json(revision.record)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--complaints", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    messages, _ = traffic(args.complaints, aged=False)
    settings = Settings()
    base, work = [], []
    for _ in range(args.repeat):
        # New engines each repeat: their caches start cold, as a worker's do on new tickets.
        process = TicketProcess(triage_engine(settings), sla_engine(settings))
        started = time.perf_counter()
        for key, raw in messages:
            core.parse_event(raw, key)
        base.append(time.perf_counter() - started)
        work.append(run_core(messages, process))
    n = len(messages)
    base_us, core_us = statistics.median(base) * 1e6 / n, statistics.median(work) * 1e6 / n
    print(f"{args.complaints} complaints, {n} inbound events; {platform.machine()}, Python {platform.python_version()}")
    print(f"baseline (pydantic validation of the event): {base_us:7.1f} µs per inbound event")
    print(f"the core's work per inbound event:          {core_us:7.1f} µs per inbound event")
    print(f"ratio baseline/core: {base_us / core_us:.3f} (median of {args.repeat} repeats)")


if __name__ == "__main__":
    main()
