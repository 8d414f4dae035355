"""Mass-incident detection on simulated traffic: false incidents per hour, and spikes detected.

    .venv/bin/python tests/benchmarks/eval_incidents.py [--hours 6] [--trials 40] [--triage]

False incidents: steady simulated traffic (the simulator's cities and category shares, Poisson
arrivals) at 1, 5 and 20 complaints/s for `--hours` hours from a fresh start, warm-up included;
every incident opened is a false one (goal: 0). Printed for the shipped policy and, as the
baseline of the same run, for the same policy judging from the first complaint without the
share condition (`warmup_seconds = 0, min_share = 0`: how the cold start used to judge).

Spikes: `--trials` times per rate, a city's steady traffic for the warm-up plus a random 0-60
minutes, then an outage burst of network complaints on top (two kinds: the simulator's own
`--incident` burst, 200 complaints in 30 s; and 10x the city's usual network complaints per
window, spread over 5 minutes). A spike counts as detected within one step when the incident
opens at most one step (60 s) after the instant the window count first reaches what the rule
needs with a perfect baseline, max(floor, multiple x the true mean); a spike that never reaches
it is "not detectable by the rule" (a 200 burst against 246 network complaints per window in a
city at 20/s) and reported as such (goal: >= 95 % of the detectable ones within one step).

By default the category of a complaint is the one the simulator drew (its category shares,
fast); `--triage` generates whole complaints with `ticketstream.simulation.Simulator` and
classifies them with the workers' `TriageEngine` (slower: use fewer hours), for the false-
incident part.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from ticketstream.incidents.detector import Detector, IncidentPolicy, KeyState, load_policy  # noqa: E402
from ticketstream.simulation import CATEGORY_WEIGHTS, CITIES, Shares, Simulator  # noqa: E402

RATES = (1.0, 5.0, 20.0)
T0 = 1_800_000_000.0
CATEGORIES = [c.value.split(".")[0] for c in CATEGORY_WEIGHTS]
WEIGHTS = list(CATEGORY_WEIGHTS.values())
TECHNICAL_SHARE = sum(w for c, w in zip(CATEGORIES, WEIGHTS, strict=False) if c == "technical") / sum(WEIGHTS)


def steady(
    rng: random.Random, rate: float, seconds: float, start: float = T0, cities: list[str] | None = None
) -> list[tuple[float, str, str]]:
    """(time, city, top-level category) of Poisson traffic with the simulator's shares."""
    names = cities or [c for _, c in CITIES]
    out, t = [], start
    while True:
        t += rng.expovariate(rate)
        if t >= start + seconds:
            return out
        out.append((t, rng.choice(names), rng.choices(CATEGORIES, weights=WEIGHTS)[0]))


def triaged(rate: float, seconds: float, seed: int) -> list[tuple[float, str, str]]:
    """The same from whole simulated complaints classified by the workers' triage engine."""
    from ticketstream.schemas.events import Event
    from ticketstream.triage.engine import TriageEngine

    sim = Simulator(
        datetime.fromtimestamp(T0, UTC),
        rate=rate,
        seed=seed,
        lifecycle=False,
        shares=Shares(malformed=0, duplicate=0, out_of_order=0, late=0),
    )
    engine, histories, out = TriageEngine(), {}, []
    for message in sim.schedule(seconds):
        event = Event.model_validate_json(message.value)
        cid = event.complaint.customer.id
        record, histories[cid] = engine.triage(event, histories.get(cid, []))
        out.append((event.occurred_at.timestamp(), record.region.city, record.category.top_level))
    return out


def run(detector: Detector, traffic: list[tuple[float, str, str]]) -> list:
    """Feed the detector (one state per city, as the stream keys it); every open record."""
    states: dict[str, KeyState] = {}
    opened = []
    last_tick = T0
    for i, (at, city, category) in enumerate(traffic):
        state = states.setdefault(city, KeyState(city))
        opened += [r for r in detector.complaint(state, f"T{i}", at, category).records if r.action == "open"]
        if at - last_tick >= 30:  # the stream's timer closes quiet incidents
            last_tick = at
            for s in states.values():
                detector.tick(s, at)
    return opened


def false_incidents(policy: IncidentPolicy, hours: float, seed: int, use_triage: bool) -> dict[float, list]:
    out = {}
    for rate in RATES:
        traffic = triaged(rate, hours * 3600, seed) if use_triage else steady(random.Random(seed), rate, hours * 3600)
        out[rate] = run(Detector(policy), traffic)
    return out


def spike_trials(policy: IncidentPolicy, rate: float, trials: int, kind: str, seed: int) -> dict[str, object]:
    """Spikes on one city's traffic (cities are independent: the state is per city)."""
    rng = random.Random(seed)
    per_city = rate / len(CITIES)
    mean = per_city * TECHNICAL_SHARE * policy.window_seconds  # network complaints per window, steady
    needed = max(policy.floor, policy.multiple * max(mean, policy.min_baseline))
    delays: list[float] = []
    undetectable = missed = late = false = 0
    for _ in range(trials):
        at = T0 + policy.warmup_seconds + 2 * policy.window_seconds + rng.uniform(0, 3600)
        if kind == "sim":
            count, duration = 200, 30.0
        else:
            count, duration = max(2 * policy.floor, round(10 * mean)), 300.0
        background = steady(rng, per_city, at - T0 + duration + 2 * policy.window_seconds, cities=["廣州"])
        burst = [(at + rng.uniform(0, duration), "廣州", "technical") for _ in range(count)]
        traffic = sorted(background + burst)
        # When the window count first reaches what a perfect baseline would need.
        reference, window = None, []
        for t, _, category in traffic:
            if category != "technical" or t < at:
                continue
            window.append(t)
            while window[0] <= t - policy.window_seconds:
                window.pop(0)
            # Background network complaints of the window before `at` count too.
            before = sum(1 for u, _, c in background if c == "technical" and t - policy.window_seconds < u < at)
            if len(window) + before >= needed:
                reference = t
                break
        opens = run(Detector(policy), traffic)
        false += sum(1 for r in opens if r.opened_at < at or r.category != "technical")
        hits = [r for r in opens if r.opened_at >= at and r.category == "technical"]
        if reference is None:
            undetectable += 1
            continue
        if not hits:
            missed += 1
            continue
        delay = hits[0].opened_at - reference
        delays.append(delay)
        late += delay > policy.step_seconds
    detectable = trials - undetectable
    within = detectable - missed - late
    return {
        "rate": rate,
        "kind": kind,
        "count": count,
        "mean": mean,
        "needed": needed,
        "trials": trials,
        "undetectable": undetectable,
        "detectable": detectable,
        "within": within,
        "missed": missed,
        "late": late,
        "false": false,
        "median_delay": statistics.median(delays) if delays else None,
        "max_delay": max(delays) if delays else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=6.0, help="hours of steady traffic per rate (default 6)")
    parser.add_argument("--trials", type=int, default=40, help="spikes per rate and kind (default 40)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--policy", help="incident policy file (default: the shipped one)")
    parser.add_argument("--triage", action="store_true", help="classify whole simulated complaints (slower)")
    args = parser.parse_args()
    policy = load_policy(args.policy)
    cold = policy.model_copy(update={"warmup_seconds": 0, "min_share": 0.0})
    started = time.perf_counter()
    print(
        f"policy: window {policy.window_seconds} s, step {policy.step_seconds} s, floor {policy.floor}, "
        f"multiple {policy.multiple}, min_share {policy.min_share}, warm-up {policy.warmup_seconds} s; "
        f"{len(CITIES)} cities; categories {'by triage' if args.triage else 'as drawn by the simulator'}"
    )
    print(f"\nfalse incidents, steady traffic, {args.hours:g} h from a fresh start (goal 0):")
    print(
        f"{'complaints/s':>12} {'complaints':>10} {'shipped policy':>16} {'per hour':>9} {'cold start, no share':>21} {'per hour':>9}"
    )
    shipped = false_incidents(policy, args.hours, args.seed, args.triage)
    baseline = false_incidents(cold, args.hours, args.seed, args.triage)
    for rate in RATES:
        n = int(rate * args.hours * 3600)
        print(
            f"{rate:>12g} {n:>10,} {len(shipped[rate]):>16} {len(shipped[rate]) / args.hours:>9.2f} "
            f"{len(baseline[rate]):>21} {len(baseline[rate]) / args.hours:>9.2f}"
        )
    print(
        f"\nspikes: network outage bursts in one city after its warm-up, {args.trials} per row "
        "(goal: >= 95 % of the detectable within one step):"
    )
    print(
        f"{'complaints/s':>12} {'burst':>22} {'usual/window':>12} {'needs':>6} {'detectable':>10} "
        f"{'within 1 step':>13} {'later':>5} {'missed':>6} {'median delay':>12} {'false':>5}"
    )
    for rate in RATES:
        for kind in ("sim", "10x"):
            r = spike_trials(policy, rate, args.trials, kind, args.seed + int(rate * 10))
            share = f"{100 * r['within'] / r['detectable']:.0f} %" if r["detectable"] else "-"
            burst = "200 in 30 s" if kind == "sim" else f"{r['count']} in 5 min (10x)"
            delay = f"{r['median_delay']:.0f} s" if r["median_delay"] is not None else "-"
            print(
                f"{rate:>12g} {burst:>22} {r['mean']:>12.1f} {r['needed']:>6.0f} {r['detectable']:>10} "
                f"{r['within']:>6} ({share:>5}) {r['late']:>5} {r['missed']:>6} {delay:>12} {r['false']:>5}"
            )
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
