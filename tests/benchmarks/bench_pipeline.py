"""End-to-end throughput of one or more workers: complaints in, every ticket's state out.

    .venv/bin/python tests/benchmarks/bench_pipeline.py [--complaints 5000] [--aged] [--complaints-only | --paced]
        [--workers 1 2] [--off-home] [--backlog 100000] [--bootstrap HOST:PORT] [--json PATH]

Starts the workers (one consumer group, real `ticketstream worker` processes on the same topics,
--partitions each) and waits until the group is stable with all of them ready; then sends N
complaints plus their lifecycle events (about four per ticket: responded, assigned, sometimes a
pause, resolved ...) to `tickets.inbound` and times from the first ticket state until every ticket
is applied by the ticket agent and visible in `tickets.state` (its triage present and every clock
event of its log applied) — what the pipeline finishes, not what intake forwards. Fresh timestamps
by default (nothing breaches); `--aged` dates the traffic a week back, so nearly every ticket
breaches, escalates and fires retroactively on arrival. `--complaints-only` sends the complaints
without their lifecycle events, each one validated, triaged, routed and given its clocks and its
state: the fresh complaints/s of issue 14's goal (a complaint costs a worker more than a
lifecycle event does: its triage, its triage record, queue copy and history entry). `--paced`
sends the complaints first and their lifecycle events only once every ticket is triaged, as
handling systems send them (minutes to hours after the complaint), and times the lifecycle events
alone: by default each ticket's events follow right behind its complaint, so many reach the worker
together with it. `--workers 1 2` runs one
worker, then two, on fresh topics with the same traffic in the same run and prints the ratio of
their events/s.

`--backlog N` then measures lag catch-up for each worker count: N inbound events are pre-loaded
before any worker runs, the workers are started, and the time from their start until the group's
committed offsets reach the end offsets of every topic it consumes (nothing left to do; Faust
commits every few seconds, so this is a few seconds coarse).

Printed next to the same run's baseline (a bare aiokafka consume-and-produce loop over the same
broker, bench_intake.py's): complaints/s and events/s, their ratio to the baseline, messages
produced per inbound event by topic, messages the worker's group consumed per inbound event, and
the worker's CPU seconds per inbound event. Progress is read from `tickets.state`'s end offsets
while the workers write (not by scraping /metrics), and its records are read and checked once
they have written them; the time is that of the broker's append stamps (`LogAppendTime` on the
benchmark's own `tickets.state`): from a phase's first state record to the one that completed
its last ticket. Also printed: the sustained rate, tickets completed per second over the middle
80 % of them by completion time. A run's first seconds are slow for reasons of the run, not of a
worker that has been running: every run makes fresh topics, and the broker's first appends to
them hold one of its request handlers at a full core for 1.5-8 s (longer on a broker holding many
partitions) while the worker waits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition  # noqa: E402
from kafka.admin import ConfigResource, ConfigResourceType  # noqa: E402

from tests.benchmarks.bench_intake import baseline, cpu_seconds, preload  # noqa: E402
from tests.benchmarks.common import add_json_option, write_json  # noqa: E402
from tests.harness import isolated_settings, spawn_worker, wait_until, worker_healthy, worker_ready  # noqa: E402
from ticketstream.settings import Settings  # noqa: E402
from ticketstream.simulation import Shares, Simulator  # noqa: E402
from ticketstream.sla.engine import SLA_FACTS  # noqa: E402
from ticketstream.topology import ACCEPTED, INBOUND, STATE  # noqa: E402
from ticketstream.workers import embedded_kafka  # noqa: E402
from ticketstream.workers.embedded_kafka import free_ports  # noqa: E402
from ticketstream.workers.topics import all_topics, create_topics  # noqa: E402
from ticketstream.workers.worker import stop_process  # noqa: E402


def traffic(complaints: int, aged: bool, lifecycle: bool = True) -> tuple[list[tuple[bytes, bytes]], dict[str, int]]:
    """Messages in send order and, per ticket, how many clock events its state must show
    (without `lifecycle`: the complaints alone)."""
    start = datetime.now(UTC) - (timedelta(days=7) if aged else timedelta(seconds=30))
    sim = Simulator(
        start,
        rate=200,
        seed=11,
        id_prefix=f"P{int(time.time())}",
        time_scale=1.0 if aged else 0.0001,
        shares=Shares(malformed=0, duplicate=0, out_of_order=0, late=0),
    )
    messages: list[tuple[bytes, bytes]] = []
    expected: Counter[str] = Counter()
    tickets: set[str] = set()
    for m in sim.schedule(complaints / 200 * 1.05):
        body = json.loads(m.value)
        if body["type"] == "complaint.received":
            if len(tickets) == complaints:
                continue
            tickets.add(body["ticket_id"])
        elif not lifecycle or body["ticket_id"] not in tickets:
            continue
        if body["type"] in ("ticket.survey_completed", "ticket.closed", "ticket.feedback_sent"):
            continue  # about four lifecycle events per ticket: a busy hour, not a ticket's whole life
        messages.append((m.key, m.value))
        if body["type"] in SLA_FACTS:
            expected[body["ticket_id"]] += 1
    return messages, {t: expected[t] for t in tickets}


def end_offsets(bootstrap: str, topics: list[str]) -> dict[str, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    parts = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or [])]
    ends = consumer.end_offsets(parts)
    consumer.close()
    out: Counter[str] = Counter()
    for tp, offset in ends.items():
        out[tp.topic] += offset
    return dict(out)


def group_consumed(bootstrap: str, group: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    offsets = admin.list_group_offsets({group: None}).get(group, {})
    admin.close()
    return sum(meta.offset for meta in offsets.values() if meta.offset > 0)


def consumed_topics(settings: Settings) -> list[str]:
    """The topics the worker's consumer group reads: its agents' input channels, from the app itself."""
    from ticketstream.workers.app import create_app  # Faust's app only for its agents' topics; never started here

    app = create_app(settings)
    return sorted({topic for agent in app.agents.values() for topic in agent.channel.topics})


def group_state(bootstrap: str, group: str) -> tuple[str, int]:
    """The consumer group's state (Stable, PreparingRebalance ...) and its number of members."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        info = admin.describe_groups([group]).get(group, {})
    finally:
        admin.close()
    return str(info.get("group_state")), len(info.get("members") or [])


class WorkerGroup:
    """`count` real `ticketstream worker` processes in one consumer group on the same topics, each
    with its own web port and data directory (as on separate machines)."""

    def __init__(self, settings: Settings, count: int, logs: Path) -> None:
        self.members = [settings] + [
            settings.model_copy(update={"web_port": port, "data_dir": Path(f"{settings.data_dir}-{i}")})
            for i, port in enumerate(free_ports(count - 1), 2)
        ]
        self.logs = [logs / f"{settings.app_id}-{i}.log" for i in range(1, count + 1)]
        self.procs: list = []

    def check_alive(self) -> None:
        for proc, log in zip(self.procs, self.logs, strict=False):
            if proc.poll() is not None:
                raise RuntimeError(f"a worker exited with {proc.returncode}:\n{log.read_text()[-3000:]}")

    def stable(self) -> bool:
        """Every worker ready and the group stable with all of them (no rebalance left to come)."""
        self.check_alive()
        if not all(worker_healthy(m) for m in self.members):
            return False
        return group_state(self.members[0].bootstrap_servers, self.members[0].app_id) == ("Stable", len(self.members))

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs)


@contextlib.contextmanager
def worker_group(settings: Settings, count: int, logs: Path) -> Iterator[WorkerGroup]:
    group = WorkerGroup(settings, count, logs)
    try:
        group.procs = [spawn_worker(m, log) for m, log in zip(group.members, group.logs, strict=True)]
        yield group
    finally:
        for proc in group.procs:  # all leave at once: one rebalance, not one per worker
            if proc.poll() is None:
                proc.terminate()
        for proc in group.procs:
            stop_process(proc)


APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}


def append_times(settings: Settings) -> None:
    """`tickets.state` stamped with each record's append time on the broker (`LogAppendTime`):
    the benchmark times from the first state record of a phase to the record that completed its
    last ticket by those stamps, when each became visible, so it can read and check the records
    after the worker has written them instead of while (the reader's fetching and JSON parsing
    took the worker's cores on a 2-core machine)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, settings.topic(STATE), configs=APPEND_TIME)])
    finally:
        admin.close()


class Written:
    """Whether the workers have written a phase's `tickets.state` records, from end offsets
    alone (one cheap request a quarter second): at least one record per inbound event sent, or
    no new record for a second (an event that changes no ticket, such as an exact re-send, has
    none, so the count alone could wait forever)."""

    def __init__(self, reader: KafkaConsumer, parts: list[TopicPartition]) -> None:
        self.reader, self.parts = reader, parts
        self.start = self.total()
        self.seen, self.since = self.start, time.monotonic()
        self.finished = False

    def total(self) -> int:
        return sum(self.reader.end_offsets(self.parts).values())

    def done(self, sent: int) -> bool:
        """Once true, true without asking the broker again (the reader then reads on)."""
        if self.finished:
            return True
        time.sleep(0.25)
        now, total = time.monotonic(), self.total()
        if total != self.seen:
            self.seen, self.since = total, now
        self.finished = total - self.start >= sent or (total > self.start and now - self.since >= 1.0)
        return self.finished


def settle(group: WorkerGroup, reader: KafkaConsumer, deadline: float = 60.0) -> None:
    """Wait until the workers are idle (under 5 % of a core for half a second) with every
    `tickets.state` record read, so that what a phase left over (the incident feed's flush, the
    history copies read back, a commit) is neither timed nor counted with the next phase."""
    ends = time.monotonic() + deadline
    while time.monotonic() < ends:
        cpu = group.cpu()
        read = sum(len(batch) for batch in reader.poll(timeout_ms=500).values())
        if not read and group.cpu() - cpu < 0.025:
            return


def is_complaint(value: bytes) -> bool:
    return json.loads(value)["type"] == "complaint.received"


SUSTAINED_MIDDLE = 0.8
"""The share of a phase's tickets, by completion time, that the sustained rate counts."""


def sustained(done_at: list[int], middle: float = SUSTAINED_MIDDLE) -> float | None:
    """Tickets completed per second over the middle `middle` of them by completion time (append
    stamps in ms): what a running worker keeps up once started, without a run's first seconds,
    where a broker's first appends to its new partitions (every run here makes fresh topics) and
    the worker's empty caches hold it back, nor its last. None when too few to tell."""
    times = sorted(done_at)
    edge = int(len(times) * (1 - middle) / 2)
    lo, hi = edge, len(times) - 1 - edge
    if hi <= lo or times[hi] == times[lo]:
        return None
    return (hi - lo) / ((times[hi] - times[lo]) / 1000)


def pipeline_run(
    settings: Settings,
    workers: int,
    messages,
    expected: dict[str, int],
    tmp: Path,
    off_home: int = 0,
    paced: bool = False,
) -> dict[str, float]:
    """Seconds from the first ticket state to the last ticket applied, and the workers' CPU
    seconds. `paced`: the complaints first, and their lifecycle events only once every ticket is
    triaged (as handling systems send them, minutes to hours later); the seconds and CPU are then
    the lifecycle events' alone, the complaints' in `complaint_seconds` and `complaint_cpu`."""
    append_times(settings)
    reader = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    parts = [TopicPartition(settings.topic(STATE), p) for p in range(settings.partitions)]
    reader.assign(parts)
    reader.seek_to_beginning(*parts)
    if paced:
        complaints = [m for m in messages if is_complaint(m[1])]
        phases = [(complaints, dict.fromkeys(expected, 0)), ([m for m in messages if not is_complaint(m[1])], expected)]
    else:
        phases = [(messages, expected)]
    timed: list[tuple[float, float, float | None]] = []
    with worker_group(settings, workers, tmp) as group:
        wait_until(group.stable, 300, f"{workers} worker(s) ready in one stable group", interval=0.5)
        for sent, wanted in phases:
            pending, first = dict(wanted), None
            done_at: list[int] = []  # each ticket's completion stamp: the last is the phase's end
            written = Written(reader, parts)
            cpu0 = group.cpu()
            preload(settings.bootstrap_servers, settings.topic(INBOUND), sent, off_home)
            deadline = time.monotonic() + max(600, len(sent) / 20)
            while pending:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{len(pending)} tickets not in tickets.state after {len(sent)} events")
                group.check_alive()
                if not written.done(len(sent)):
                    continue  # the worker is still writing: reading its records now would take its cores
                for batch in reader.poll(timeout_ms=200, max_records=20_000).values():
                    for record in batch:
                        first = record.timestamp if first is None else min(first, record.timestamp)
                        ticket = record.key.decode()
                        if ticket not in pending:
                            continue
                        view = json.loads(record.value)
                        if view.get("triage") and len(view["events"]) >= pending[ticket]:
                            del pending[ticket]
                            done_at.append(record.timestamp)
            if first is None or not done_at:
                raise RuntimeError("no tickets.state record was read in this phase")
            timed.append(((max(done_at) - first) / 1000 or 0.001, group.cpu() - cpu0, sustained(done_at)))
            if len(timed) < len(phases):
                settle(group, reader)
    reader.close()
    (seconds, cpu, steady), *rest = timed[::-1]
    run = {"seconds": seconds, "cpu": cpu, "sustained": steady}
    if rest:
        run["complaint_seconds"], run["complaint_cpu"], _ = rest[0]
    return run


def backlog_traffic(events: int, lifecycle: bool = True) -> list[tuple[bytes, bytes]]:
    """The first `events` messages of fresh traffic (complaints and their lifecycle events, or
    the complaints alone)."""
    per_ticket = 4 if lifecycle else 1
    messages, _ = traffic(events // per_ticket + 1, aged=False, lifecycle=lifecycle)
    while len(messages) < events:
        messages, _ = traffic(len(messages) // per_ticket + events // per_ticket + 1, aged=False, lifecycle=lifecycle)
    return messages[:events]


def catch_up(settings: Settings, workers: int, messages, tmp: Path) -> dict[str, float]:
    """Seconds from starting the workers on a pre-loaded backlog until the group has committed
    the end offset of every partition of every topic it consumes (and until all were ready)."""
    create_topics(settings)
    preload(settings.bootstrap_servers, settings.topic(INBOUND), messages)
    sources = consumed_topics(settings)
    ends_reader = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    parts = [TopicPartition(t, p) for t in sources for p in range(settings.partitions)]
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    inbound = settings.topic(INBOUND)
    started = time.perf_counter()
    ready_after: list[float] = []
    try:
        with worker_group(settings, workers, tmp) as group:

            def caught_up() -> bool:
                group.check_alive()
                if not ready_after and all(worker_ready(m) for m in group.members):
                    ready_after.append(time.perf_counter() - started)
                # Committed offsets first, end offsets second: a record written in between shows
                # as not yet consumed, never the other way round.
                committed = {
                    tp: meta.offset
                    for tp, meta in admin.list_group_offsets({settings.app_id: None}).get(settings.app_id, {}).items()
                }
                if sum(v for tp, v in committed.items() if tp.topic == inbound and v > 0) < len(messages):
                    return False
                ends = ends_reader.end_offsets(parts)
                return all(committed.get(tp, 0) >= end for tp, end in ends.items() if end > 0)

            wait_until(caught_up, max(900, len(messages) / 20), f"the group to catch up on {len(messages)} events", 0.5)
            seconds = time.perf_counter() - started
    finally:
        ends_reader.close()
        admin.close()
    return {"seconds": seconds, "ready_seconds": ready_after[0] if ready_after else seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--complaints", type=int, default=5000)
    parser.add_argument("--aged", action="store_true", help="traffic dated a week back (breaches on arrival)")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1], help="worker counts to run in turn (e.g. 1 2: their ratio)"
    )
    parser.add_argument(
        "--partitions", type=int, default=12, help="partitions of every topic (the most workers that share them)"
    )
    parser.add_argument(
        "--off-home",
        action="store_true",
        help="send every event off its ticket's home partition (as librdkafka's CRC32 places most): all re-keyed",
    )
    parser.add_argument(
        "--complaints-only",
        action="store_true",
        help="send the complaints without their lifecycle events (the issue's fresh complaints/s)",
    )
    parser.add_argument(
        "--paced",
        action="store_true",
        help="send the complaints first and their lifecycle events once every ticket is triaged (as handling "
        "systems send them, later): events/s and CPU per event of the lifecycle events alone",
    )
    parser.add_argument("--backlog", type=int, default=0, help="then time the catch-up on this many pre-loaded events")
    parser.add_argument("--bootstrap", help="an existing Kafka; default: start the embedded broker")
    add_json_option(parser)
    args = parser.parse_args()
    if args.paced and args.complaints_only:
        parser.error("--paced sends lifecycle events after the complaints: not with --complaints-only")
    tmp = Path(tempfile.mkdtemp(prefix="ts-bench-"))
    bootstrap = args.bootstrap
    if not bootstrap:
        print("starting the embedded Kafka broker ...", flush=True)
        bootstrap = embedded_kafka.start(tmp / "kafka").bootstrap_servers
    try:
        messages, expected = traffic(args.complaints, args.aged, lifecycle=not args.complaints_only)
        settings = isolated_settings(bootstrap, tmp, partitions=args.partitions)
        create_topics(settings)
        preload(bootstrap, settings.topic(INBOUND), messages)
        base = len(messages) / asyncio.run(
            baseline(bootstrap, settings.topic(INBOUND), settings.topic(ACCEPTED), len(messages))
        )
        n, c = len(messages), len(expected)
        print(
            f"\n{c} complaints, {n} inbound events ({'aged a week' if args.aged else 'fresh'}"
            f"{', complaints only' if args.complaints_only else ''}); "
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        print(f"baseline (bare aiokafka consume+produce): {base:9.0f} events/s")
        runs = []
        for workers in args.workers:
            settings = isolated_settings(bootstrap, tmp, partitions=args.partitions)
            create_topics(settings)
            topics = [name for name, _ in all_topics(settings)]
            before = end_offsets(bootstrap, topics)
            run = pipeline_run(
                settings, workers, messages, expected, tmp, args.partitions if args.off_home else 0, args.paced
            )
            after = end_offsets(bootstrap, topics + [t for t in _changelogs(bootstrap, settings.app_id)])
            consumed = group_consumed(bootstrap, settings.app_id)
            who = "one worker" if workers == 1 else f"{workers} workers"
            timed = n - c if args.paced else n  # the events the timed phase sent
            events_rate = timed / run["seconds"]
            complaints_rate = c / run.get("complaint_seconds", run["seconds"])
            if args.paced:
                print(
                    f"complaints first ({who}): {complaints_rate:7.0f} complaints/s in "
                    f"{run['complaint_seconds']:.1f} s, worker CPU {run['complaint_cpu'] / c * 1e6:.0f} µs per complaint"
                )
                print(
                    f"pipeline ({who}, until tickets.state): {events_rate:9.0f} events/s: their {timed} lifecycle "
                    f"events, sent once every ticket was triaged, in {run['seconds']:.1f} s"
                )
            else:
                print(
                    f"pipeline ({who}, until tickets.state): {events_rate:9.0f} events/s, "
                    f"{complaints_rate:7.0f} complaints/s in {run['seconds']:.1f} s"
                )
            if run["sustained"] is not None:
                print(
                    f"sustained: {run['sustained']:9.0f} tickets/s completed, the middle {SUSTAINED_MIDDLE:.0%} of the "
                    "timed phase's "
                    "tickets by completion time (without its first and last seconds)"
                )
            print(
                f"ratio pipeline/baseline: {events_rate / base:.4f} (events), {complaints_rate / base:.4f} (complaints)"
            )
            print(
                f"worker CPU: {run['cpu'] / timed * 1e6:.0f} µs per inbound event"
                + (" (the lifecycle events)" if args.paced else "")
                + ("" if workers == 1 else f" ({who} together)")
            )
            produced = {
                t.removeprefix(settings.topic_prefix): after.get(t, 0) - before.get(t, 0)
                for t in after
                if t != settings.topic(INBOUND) and after.get(t, 0) - before.get(t, 0)
            }
            if not runs:
                print("\nmessages produced per inbound event, by topic:")
                for topic, count in sorted(produced.items(), key=lambda kv: -kv[1]):
                    print(f"  {topic:48} {count / n:6.2f}")
                print(f"  {'total':48} {sum(produced.values()) / n:6.2f}")
                print(f"messages consumed by the worker's group per inbound event: {consumed / n:.2f}\n")
            runs.append(
                {
                    "workers": workers,
                    "seconds": run["seconds"],
                    "events_per_s": events_rate,
                    "complaints_per_s": complaints_rate,
                    "sustained_tickets_per_s": run["sustained"],
                    "ratio_to_baseline": events_rate / base,
                    "cpu_us_per_event": run["cpu"] / timed * 1e6,
                    "produced_per_event": {t: v / n for t, v in produced.items()},
                    "consumed_per_event": consumed / n,
                    **(
                        {
                            "complaint_seconds": run["complaint_seconds"],
                            "complaint_cpu_us": run["complaint_cpu"] / c * 1e6,
                        }
                        if args.paced
                        else {}
                    ),
                }
            )
        for run in runs[1:]:
            print(
                f"ratio {run['workers']} workers / {runs[0]['workers']}: "
                f"{run['events_per_s'] / runs[0]['events_per_s']:.2f} (events/s, same traffic, same run)"
            )
        backlogs = []
        if args.backlog:
            backlog = backlog_traffic(args.backlog, lifecycle=not args.complaints_only)
            for workers in args.workers:
                settings = isolated_settings(bootstrap, tmp, partitions=args.partitions)
                result = catch_up(settings, workers, backlog, tmp)
                backlogs.append({"workers": workers, "events": len(backlog), **result})
                print(
                    f"catch-up on a {len(backlog)}-event backlog, {workers} worker(s): {result['seconds']:.1f} s "
                    f"from start to committed end offsets ({len(backlog) / result['seconds']:.0f} events/s; "
                    f"all workers answering after {result['ready_seconds']:.1f} s)",
                    flush=True,
                )
        write_json(
            args.json,
            "pipeline-complaints" if args.complaints_only else "pipeline-paced" if args.paced else "pipeline",
            {
                "complaints": c,
                "events": n,
                "aged": args.aged,
                "partitions": args.partitions,
                "off_home": args.off_home,
                "complaints_only": args.complaints_only,
                "paced": args.paced,
                "workers": args.workers,
                "backlog": args.backlog,
            },
            {"baseline_per_s": base, "runs": runs, "backlog": backlogs},
        )
    finally:
        if not args.bootstrap:
            embedded_kafka.stop(tmp / "kafka")


def _changelogs(bootstrap: str, app_id: str) -> list[str]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    names = [t for t in consumer.topics() if t.startswith(f"{app_id}-") and t.endswith("-changelog")]
    consumer.close()
    return names


if __name__ == "__main__":
    main()
