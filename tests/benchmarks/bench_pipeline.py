"""End-to-end throughput of one worker: complaints in, every ticket's state out.

    .venv/bin/python tests/benchmarks/bench_pipeline.py [--complaints 5000] [--aged] [--bootstrap HOST:PORT]

Pre-loads N complaints plus their lifecycle events (about four per ticket: responded, assigned,
sometimes a pause, resolved ...) on `tickets.inbound`, starts one worker, and times from its first
consumed message until every ticket is applied by the ticket agent and visible in `tickets.state`
(its triage present and every clock event of its log applied) — what the pipeline finishes, not
what intake forwards. Fresh timestamps by default (nothing breaches); `--aged` dates the traffic a
week back, so nearly every ticket breaches, escalates and fires retroactively on arrival.

Printed next to the same run's baseline (a bare aiokafka consume-and-produce loop over the same
broker, bench_intake.py's): complaints/s and events/s, their ratio to the baseline, messages
produced per inbound event by topic, messages the worker's group consumed per inbound event, and
the worker's CPU seconds per inbound event. Progress is read from `tickets.state` keys and end
offsets, not by scraping /metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition  # noqa: E402

from tests.benchmarks.bench_intake import baseline, cpu_seconds, preload  # noqa: E402
from tests.harness import isolated_settings, worker_process  # noqa: E402
from ticketstream.simulation import Shares, Simulator  # noqa: E402
from ticketstream.sla.engine import SLA_FACTS  # noqa: E402
from ticketstream.topology import ACCEPTED, INBOUND, STATE  # noqa: E402
from workers import embedded_kafka  # noqa: E402
from workers.topics import all_topics, create_topics  # noqa: E402


def traffic(complaints: int, aged: bool) -> tuple[list[tuple[bytes, bytes]], dict[str, int]]:
    """Messages in send order and, per ticket, how many clock events its state must show."""
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
        elif body["ticket_id"] not in tickets:
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


def pipeline_run(settings, messages, expected: dict[str, int], tmp: Path) -> dict[str, float]:
    """Seconds from the worker's first output to the last ticket applied, and its CPU seconds."""
    reader = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    parts = [TopicPartition(settings.topic(STATE), p) for p in range(settings.partitions)]
    reader.assign(parts)
    reader.seek_to_beginning(*parts)
    pending = dict(expected)
    first = None
    with worker_process(settings, tmp / f"{settings.app_id}.log") as proc:
        cpu0 = cpu_seconds(proc.pid)
        while pending:
            for batch in reader.poll(timeout_ms=200, max_records=20_000).values():
                if first is None:
                    first = time.perf_counter()
                for record in batch:
                    ticket = record.key.decode()
                    if ticket not in pending:
                        continue
                    view = json.loads(record.value)
                    if view.get("triage") and len(view["events"]) >= pending[ticket]:
                        del pending[ticket]
        elapsed = time.perf_counter() - (first or time.perf_counter())
        cpu = cpu_seconds(proc.pid) - cpu0
    reader.close()
    return {"seconds": elapsed, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--complaints", type=int, default=5000)
    parser.add_argument("--aged", action="store_true", help="traffic dated a week back (breaches on arrival)")
    parser.add_argument("--bootstrap", help="an existing Kafka; default: start the embedded broker")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ts-bench-"))
    bootstrap = args.bootstrap
    if not bootstrap:
        print("starting the embedded Kafka broker ...", flush=True)
        bootstrap = embedded_kafka.start(tmp / "kafka").bootstrap_servers
    try:
        messages, expected = traffic(args.complaints, args.aged)
        settings = isolated_settings(bootstrap, tmp, partitions=12)
        create_topics(settings)
        preload(bootstrap, settings.topic(INBOUND), messages)
        base = len(messages) / asyncio.run(
            baseline(bootstrap, settings.topic(INBOUND), settings.topic(ACCEPTED), len(messages))
        )
        settings = isolated_settings(bootstrap, tmp, partitions=12)
        create_topics(settings)
        preload(bootstrap, settings.topic(INBOUND), messages)
        topics = [name for name, _ in all_topics(settings)]
        before = end_offsets(bootstrap, topics)
        run = pipeline_run(settings, messages, expected, tmp)
        after = end_offsets(bootstrap, topics + [t for t in _changelogs(bootstrap, settings.app_id)])
        consumed = group_consumed(bootstrap, settings.app_id)
        n, c = len(messages), len(expected)
        events_rate, complaints_rate = n / run["seconds"], c / run["seconds"]
        print(
            f"\n{c} complaints, {n} inbound events ({'aged a week' if args.aged else 'fresh'}); "
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        print(f"baseline (bare aiokafka consume+produce): {base:9.0f} events/s")
        print(
            f"pipeline (one worker, until tickets.state): {events_rate:9.0f} events/s, "
            f"{complaints_rate:7.0f} complaints/s in {run['seconds']:.1f} s"
        )
        print(f"ratio pipeline/baseline: {events_rate / base:.4f} (events), {complaints_rate / base:.4f} (complaints)")
        print(f"worker CPU: {run['cpu'] / n * 1e6:.0f} µs per inbound event")
        print("\nmessages produced per inbound event, by topic:")
        produced = {t: after.get(t, 0) - before.get(t, 0) for t in after}
        for topic, count in sorted(produced.items(), key=lambda kv: -kv[1]):
            if count and topic != settings.topic(INBOUND):
                print(f"  {topic.removeprefix(settings.topic_prefix):48} {count / n:6.2f}")
        total = sum(v for t, v in produced.items() if t != settings.topic(INBOUND))
        print(f"  {'total':48} {total / n:6.2f}")
        print(f"messages consumed by the worker's group per inbound event: {consumed / n:.2f}")
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
