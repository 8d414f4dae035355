"""What the order of a ticket's inputs costs the functional core: triage first, or lifecycle first.

    .venv/bin/python tests/benchmarks/bench_lifecycle_order.py [--complaints 3000] [--repeat 4]

`bench_pipeline.py` sends each ticket's lifecycle events right behind its complaint. While triage
was a hop of its own (before 2026-12-02), most of them reached their ticket before its triage did
and waited in its state, and the triage record then applied them in one pass; since a complaint
is triaged in the step that accepts it, each lifecycle event meets a triaged ticket and its
clocks are derived again. This runs `TicketProcess` over the same traffic, one ticket at a time,
in both orders (alternating, fresh engines each repeat, the state encoded after every input as
the table does, the garbage collector tuned as in the worker) and prints µs per inbound event, median of the repeats: the core's share of the
difference `bench_pipeline.py` shows with lifecycle events.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.benchmarks.bench_pipeline import traffic  # noqa: E402
from ticketstream import intake as core  # noqa: E402
from ticketstream.engines import sla_engine, triage_engine  # noqa: E402
from ticketstream.intake import COMPLAINT_RECEIVED  # noqa: E402
from ticketstream.settings import Settings  # noqa: E402
from ticketstream.tickets.process import TicketProcess  # noqa: E402
from ticketstream.tickets.state import TicketState  # noqa: E402
from ticketstream.workers import gctuning  # noqa: E402


def run(tickets: dict[str, list[core.Checked]], triage_first: bool) -> float:
    """Seconds of the core's work on every ticket's inputs in one order."""
    settings = Settings()
    process = TicketProcess(triage_engine(settings), sla_engine(settings))
    spent = 0.0
    for ticket_id, inputs in tickets.items():
        complaint = [i for i in inputs if i.type == COMPLAINT_RECEIVED]
        lifecycle = [i for i in inputs if i.type != COMPLAINT_RECEIVED]
        state = TicketState.new(ticket_id)
        now = time.time()
        started = time.perf_counter()
        for item in complaint + lifecycle if triage_first else lifecycle + complaint:
            assert item.event is not None
            if item.type == COMPLAINT_RECEIVED:
                process.on_complaint(state, item.event, [], now)
            else:
                process.on_lifecycle(state, item.event, now)
            state.to_value()
        spent += time.perf_counter() - started
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--complaints", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args()
    messages, _ = traffic(args.complaints, aged=False)
    tickets: dict[str, list[core.Checked]] = defaultdict(list)
    for key, raw in messages:
        item = core.checked(core.parse_event(raw, key))
        tickets[item.ticket_id].append(item)
    gctuning.tune()  # the worker's collector settings (workers/gctuning.py)
    times: dict[bool, list[float]] = {True: [], False: []}
    for i in range(args.repeat):
        for triage_first in (True, False) if i % 2 == 0 else (False, True):
            times[triage_first].append(run(tickets, triage_first))
    n = len(messages)
    print(f"{args.complaints} complaints, {n} inbound events, {args.repeat} alternating repeats")
    for triage_first, label in ((True, "triage first (since 2026-12-02)"), (False, "lifecycle first (waiting)")):
        print(f"{label:34s} {statistics.median(times[triage_first]) * 1e6 / n:7.1f} µs per inbound event")


if __name__ == "__main__":
    main()
