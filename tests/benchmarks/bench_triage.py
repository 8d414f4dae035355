"""Throughput of the pure triage core (normalise, match, classify, grade, route, build the record).

    .venv/bin/python tests/benchmarks/bench_triage.py [--complaints 20000] [--repeat 5]

Runs on one core over simulator complaints (both scripts, all categories). The baseline in the
same run is the cheapest thing any triage must do: validating the complaint event with pydantic.
Prints complaints/s (median of the repeats, and the slowest), µs per complaint and the ratio,
and the same for the phrase rules without the learned model (what the model costs).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.benchmarks.common import add_json_option, simulated_complaints, triage_rate, write_json  # noqa: E402
from tests.benchmarks.eval_triage import rules_only_engine  # noqa: E402
from ticketstream.schemas.events import Event  # noqa: E402
from ticketstream.triage.engine import TriageEngine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--complaints", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    add_json_option(parser)
    args = parser.parse_args()
    raws = simulated_complaints(args.complaints, seed=5)
    events = [Event.model_validate_json(r) for r in raws]
    engine, rules_only = TriageEngine(), rules_only_engine()
    base, core, rules = [], [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        for raw in raws:
            Event.model_validate_json(raw)
        base.append(len(raws) / (time.perf_counter() - t))
        core.append(triage_rate(engine, events))
        rules.append(triage_rate(rules_only, events))
    print(f"complaints: {len(events)}, repeats: {args.repeat}, Python {platform.python_version()}, one core")
    print(f"baseline (pydantic validation of the event): median {statistics.median(base):9.0f}/s")
    print(
        f"triage core (classify+grade+route+record):   median {statistics.median(core):9.0f}/s, "
        f"slowest {min(core):9.0f}/s, {1e6 / statistics.median(core):.1f} µs per complaint"
    )
    print(
        f"the same with the phrase rules alone (no model): median {statistics.median(rules):9.0f}/s, "
        f"{1e6 / statistics.median(rules):.1f} µs per complaint"
    )
    print(
        f"ratio triage/baseline: {statistics.median(core) / statistics.median(base):.3f} "
        f"(rules alone: {statistics.median(rules) / statistics.median(base):.3f}; goal >= 0.05)"
    )
    write_json(
        args.json,
        "triage",
        {"complaints": len(events), "repeat": args.repeat},
        {
            "baseline_per_s": base,
            "triage_per_s": core,
            "rules_only_per_s": rules,
            "median_baseline_per_s": statistics.median(base),
            "median_triage_per_s": statistics.median(core),
            "median_rules_only_per_s": statistics.median(rules),
            "ratio": statistics.median(core) / statistics.median(base),
            "ratio_rules_only": statistics.median(rules) / statistics.median(base),
        },
    )


if __name__ == "__main__":
    main()
