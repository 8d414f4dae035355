"""The incident detector's cost per complaint next to the triage core without it, same run.

    .venv/bin/python tests/benchmarks/bench_incidents.py [--complaints 20000] [--repeat 5]

Baseline: the pure triage core over simulator complaints (with an injected outage burst).
Measured: the same plus the detector's per-complaint step (the city's state decoded from and
encoded to its table form per complaint: the stream does so once per city and batch, so this is its worst case). Prints both rates, the detector's µs per complaint and the
ratio. (In the live worker a complaint also costs its share of one `incidents.by_key` record per
city and flush of triage's feed, produced and consumed: streams/incident_feed.py.)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.benchmarks.common import simulated_complaints, triage_anew, triage_rate  # noqa: E402
from ticketstream.incidents.detector import Detector, IncidentPolicy, KeyState  # noqa: E402
from ticketstream.schemas.events import Event  # noqa: E402
from ticketstream.triage.engine import HistoryEntry, TriageEngine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--complaints", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    events = [
        Event.model_validate_json(raw)
        for raw in simulated_complaints(args.complaints, seed=8, rate=50, incident=("廣州", 60, 120, 500))
    ]
    engine, detector = TriageEngine(), Detector(IncidentPolicy(warmup_seconds=0))  # judged from the start
    base, full = [], []
    opened = 0
    for _ in range(args.repeat):
        base.append(triage_rate(engine, events))
        histories: dict[str, list[HistoryEntry]] = {}
        states: dict[str, dict] = {}
        opened = 0
        t = time.perf_counter()
        for event in events:
            cid = event.complaint.customer.id
            record, histories[cid] = triage_anew(engine, event, histories.get(cid, []))  # as the baseline
            key = record.region.city
            state = KeyState.from_dict(states[key]) if key in states else KeyState(key)
            outcome = detector.complaint(
                state, record.ticket_id, event.occurred_at.timestamp(), record.category.top_level
            )
            opened += sum(1 for r in outcome.records if r.action == "open")
            states[key] = state.to_dict()
        full.append(len(events) / (time.perf_counter() - t))
    b, f = statistics.median(base), statistics.median(full)
    print(f"complaints: {len(events)} (incidents opened per run: {opened}), repeats: {args.repeat}, one core")
    print(f"triage core alone:       median {b:9.0f} complaints/s")
    print(f"triage core + detector:  median {f:9.0f} complaints/s")
    print(f"detector cost: {1e6 / f - 1e6 / b:.1f} µs per complaint; ratio with/without {f / b:.2f}")


if __name__ == "__main__":
    main()
