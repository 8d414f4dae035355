"""SLA engine live: breach latency with many open tickets, memory per open ticket, recovery time.

    .venv/bin/python tests/benchmarks/bench_sla.py [--tickets 20000] [--probes 300] [--bootstrap HOST:PORT]

1. Loads --tickets open complaints (received now: under the shipped policy nothing of theirs is
   due for an hour, each from a customer of its own) through the whole pipeline into one worker
   and waits until its ticket agent holds them all.
2. Sends --probes complaints back-dated so that their response breach (L3: 24 h) falls 10-40 s
   in the future, and measures for each breach: (Kafka timestamp of the sla.events record) minus
   the breach instant. Prints p50, p99 and max.
3. Memory per open ticket: the worker's RSS growth over the load, divided by the tickets.
4. Recovery: SIGKILL the worker, start a new one, time until it serves a loaded ticket again
   and until every open ticket is back in its deadline index (it fires again).
The baseline in the same run is the tick interval (the floor of any timer-driven latency).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from kafka import KafkaProducer  # noqa: E402

from tests.benchmarks.common import add_json_option, write_json  # noqa: E402
from tests.factories import encode, received  # noqa: E402
from tests.harness import TopicReader, isolated_settings, spawn_worker, wait_until, worker_ready  # noqa: E402
from ticketstream.streams.metrics import scrape  # noqa: E402
from ticketstream.topology import INBOUND, SLA_EVENTS  # noqa: E402
from ticketstream.workers import embedded_kafka  # noqa: E402
from ticketstream.workers.topics import create_topics  # noqa: E402


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def load_messages(count: int, now: datetime):
    """(topic name, key, value) of `count` open tickets received at `now`."""
    template = received("OPEN-0000000", occurred_at=now.isoformat(), content="网速有点慢，晚上看视频卡")
    for i in range(count):
        event = dict(template, ticket_id=f"OPEN-{i:07d}", event_id=f"OPEN-{i:07d}:received")
        event["data"] = dict(template["data"], customer=dict(template["data"]["customer"], id=f"C{i:07d}"))
        yield INBOUND, event["ticket_id"].encode(), encode(event)


def start_worker(settings, log: Path) -> subprocess.Popen:
    proc = spawn_worker(settings, log)
    wait_until(lambda: worker_ready(settings), 120, "the worker")
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--bootstrap")
    parser.add_argument("--store", choices=["memory", "rocksdb"], default="rocksdb", help="worker table store")
    add_json_option(parser)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ts-bench-sla-"))
    bootstrap = args.bootstrap or embedded_kafka.start(tmp / "kafka").bootstrap_servers
    # Hundreds of probes in one city within seconds would open a mass incident and regrade them
    # (a retroactive breach is not a latency); detection is out of the way here.
    settings = isolated_settings(
        bootstrap,
        tmp,
        partitions=12,
        sla_tick_seconds=0.25,
        store=args.store,
        incident_policy=REPO / "tests" / "data" / "no_incident_policy.toml",
    )
    create_topics(settings)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024)
    worker = start_worker(settings, tmp / "worker.log")
    try:
        time.sleep(2)
        base_rss = rss_kb(worker.pid)
        now = datetime.now(UTC)
        t0 = time.time()
        for i, (topic, key, value) in enumerate(load_messages(args.tickets, now), 1):
            producer.send(settings.topic(topic), key=key, value=value)
            if i % 100_000 == 0:
                print(f"  sent {i} tickets ({time.time() - t0:.0f} s)", flush=True)
        producer.flush()

        def held() -> bool:
            # None while the worker is busy (a rebalance's index rebuild holds its event loop).
            count = scrape(settings.web_port, "ticketstream_ticket_messages_total", {"source": "triage"}) or 0
            if time.time() - progress[0] > 30:
                progress[0] = time.time()
                print(
                    f"  ticket agent holds {count:.0f} ({time.time() - t0:.0f} s, RSS {rss_kb(worker.pid) // 1024} MB)",
                    flush=True,
                )
            return count >= args.tickets

        progress = [time.time()]
        wait_until(held, 7200, f"{args.tickets} open tickets in the ticket agent", interval=1)
        load_s = time.time() - t0
        loaded_rss = rss_kb(worker.pid)
        reader = TopicReader(settings, settings.topic(SLA_EVENTS))
        reader.consumer.seek_to_end()
        due = {}
        start = time.time() + 10
        for i in range(args.probes):
            due_at = start + 30 * i / max(1, args.probes - 1)
            received_at = datetime.fromtimestamp(due_at, UTC) - timedelta(hours=24)
            ticket = f"PROBE-{i:05d}"
            due[f"{ticket}:1:response:breach:100"] = due_at
            event = received(ticket, occurred_at=received_at.isoformat(), content="网速有点慢")
            event["data"]["customer"]["id"] = f"P{i:05d}"
            producer.send(settings.topic(INBOUND), key=ticket.encode(), value=encode(event))
        producer.flush()
        delays = {}

        def collect() -> bool:
            reader.poll()
            for record in reader.records:
                body = json.loads(record.value)
                if body["id"] in due and body["id"] not in delays:
                    fired_due = datetime.fromisoformat(body["due_at"]).timestamp()
                    assert abs(fired_due - due[body["id"]]) < 0.001 and not body["retroactive"], body
                    delays[body["id"]] = record.timestamp / 1000 - fired_due
            return len(delays) == len(due)

        wait_until(collect, 120, "every probe breach")
        values = sorted(delays.values())
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        # Recovery: hard kill, restart, time until a loaded ticket is served again.
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        t_restart = time.time()
        worker = start_worker(settings, tmp / "worker2.log")
        probe_url = f"http://127.0.0.1:{settings.web_port}/tickets/OPEN-{args.tickets - 1:07d}"

        def served() -> bool:
            try:
                with urllib.request.urlopen(probe_url, timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_until(served, 600, "the restarted worker to serve a loaded ticket")
        served_after = time.time() - t_restart
        # Serving is not enough: the worker must be firing again, i.e. its deadline index rebuilt.
        wait_until(
            lambda: (scrape(settings.web_port, "ticketstream_deadline_index_tickets") or 0) >= args.tickets,
            600,
            "the restarted worker's deadline index",
            interval=0.5,
        )
        recovery = time.time() - t_restart
        print(
            f"open tickets: {args.tickets} (loaded in {load_s:.1f} s), probes: {args.probes}, "
            f"machine: {os.cpu_count()} cores"
        )
        print(f"baseline: tick interval {settings.sla_tick_seconds:.2f} s")
        print(
            f"breach latency (emitted - due): p50 {statistics.median(values):.3f} s, p99 {p99:.3f} s, "
            f"max {values[-1]:.3f} s"
        )
        print(
            f"memory per open ticket (worker RSS growth / tickets): {(loaded_rss - base_rss) * 1024 / args.tickets:.0f} bytes"
        )
        print(
            f"recovery after SIGKILL: a loaded ticket served after {served_after:.1f} s, "
            f"every open ticket back in the deadline index (firing again) after {recovery:.1f} s"
        )
        write_json(
            args.json,
            "sla",
            {"tickets": args.tickets, "probes": args.probes, "store": args.store},
            {
                "load_seconds": load_s,
                "tick_seconds": settings.sla_tick_seconds,
                "latency_p50_s": statistics.median(values),
                "latency_p99_s": p99,
                "latency_max_s": values[-1],
                "rss_bytes_per_ticket": (loaded_rss - base_rss) * 1024 / args.tickets,
                "recovery_serving_s": served_after,
                "recovery_firing_s": recovery,
            },
        )
    finally:
        if worker.poll() is None:
            worker.terminate()
            worker.wait(timeout=30)
        if not args.bootstrap:
            embedded_kafka.stop(tmp / "kafka")


if __name__ == "__main__":
    main()
