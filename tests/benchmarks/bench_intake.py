"""Intake throughput against a bare aiokafka consume-and-produce loop, on the same broker, same run.

    .venv/bin/python tests/benchmarks/bench_intake.py [--events 50000] [--repeat 3] [--bootstrap HOST:PORT]

Both sides read the same pre-loaded messages from a topic of their own and write one message per
input; the baseline does nothing else, the worker validates, de-duplicates (table + changelog)
and forwards. The worker is measured twice per run: with every message on its ticket's home
partition (murmur2, as `ticketstream publish` and Java clients place them: de-duplicated in
place) and with every message on another partition (as a librdkafka client's CRC32 places most
of them: each one re-keyed through `tickets.keyed` first). Without --bootstrap it starts the
embedded broker in a temporary directory. Prints events/s of each run, the medians and the
ratios to the baseline, and the worker's CPU per event while intake drains, on either placement.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from kafka import KafkaProducer  # noqa: E402

from tests.benchmarks.common import add_json_option, write_json  # noqa: E402
from tests.harness import isolated_settings, metric_value, worker_process  # noqa: E402
from ticketstream.simulation import Shares, Simulator  # noqa: E402
from ticketstream.streams.emit import home_partition  # noqa: E402
from ticketstream.topology import ACCEPTED, INBOUND  # noqa: E402
from ticketstream.workers import embedded_kafka  # noqa: E402
from ticketstream.workers.topics import create_topics  # noqa: E402

PARTITIONS = 12


def payloads(count: int) -> list[tuple[bytes, bytes]]:
    sim = Simulator(
        datetime(2026, 11, 23, tzinfo=UTC),
        rate=500,
        seed=99,
        id_prefix="B",
        shares=Shares(malformed=0, duplicate=0, out_of_order=0, late=0),
    )
    out = []
    for message in sim.schedule(1e9):
        out.append((message.key, message.value))
        if len(out) == count:
            return out
    return out


def preload(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]], off_home: int = 0) -> None:
    """Send the messages keyed by ticket; `off_home` partitions: each on another partition than
    its home, as if a client with another partitioner had sent it (0: the producer's murmur2)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024)
    for key, value in messages:
        partition = (home_partition(key, off_home) + 1) % off_home if off_home else None
        producer.send(topic, key=key, value=value, partition=partition)
    producer.flush()
    producer.close()


async def baseline(bootstrap: str, source: str, sink: str, count: int) -> float:
    """Consume `count` messages and produce each to `sink`; seconds from first read to last ack."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{source}",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    seen = 0
    started = 0.0
    try:
        while seen < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                if not started:
                    started = time.perf_counter()
                for record in records:
                    await producer.send(sink, key=record.key, value=record.value)
                seen += sum(1 for _ in records)
        await producer.flush()
        return time.perf_counter() - started
    finally:
        await consumer.stop()
        await producer.stop()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def intake_run(settings, count: int, tmp: Path) -> tuple[float, float]:
    """Seconds the worker's intake takes from its first processed message to the last, and the
    worker's CPU seconds per message over the same span (every stage's work in that span)."""
    with worker_process(settings, tmp / f"{settings.app_id}.log") as proc:
        first = None
        while True:
            done = metric_value(settings, "ticketstream_intake_processing_seconds_count")
            now = time.perf_counter()
            if done > 0 and first is None:
                first = (now, done, cpu_seconds(proc.pid))
            if done >= count:
                break
            time.sleep(0.05)
        cpu = cpu_seconds(proc.pid)
        # Extrapolate the messages processed before the first observation at the measured rate.
        t0, n0, cpu0 = first
        elapsed = now - t0
        return elapsed * count / max(count - n0, 1), (cpu - cpu0) / max(done - n0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bootstrap", help="an existing Kafka; default: start the embedded broker")
    add_json_option(parser)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ts-bench-"))
    bootstrap = args.bootstrap
    if not bootstrap:
        print("starting the embedded Kafka broker ...", flush=True)
        bootstrap = embedded_kafka.start(tmp / "kafka").bootstrap_servers
    try:
        messages = payloads(args.events)
        base_rates: list[float] = []
        intake_rates: list[float] = []
        rekeyed_rates: list[float] = []
        cpu: dict[int, list[float]] = {0: [], PARTITIONS: []}
        for run in range(1, args.repeat + 1):
            settings = isolated_settings(bootstrap, tmp, partitions=PARTITIONS)
            create_topics(settings)
            source = settings.topic(INBOUND)
            preload(bootstrap, source, messages)
            seconds = asyncio.run(baseline(bootstrap, source, settings.topic(ACCEPTED), len(messages)))
            base_rates.append(len(messages) / seconds)
            for off_home, rates in ((0, intake_rates), (PARTITIONS, rekeyed_rates)):
                settings = isolated_settings(bootstrap, tmp, partitions=PARTITIONS)
                create_topics(settings)
                preload(bootstrap, settings.topic(INBOUND), messages, off_home)
                seconds, cpu_per_event = intake_run(settings, len(messages), tmp)
                rates.append(len(messages) / seconds)
                cpu[off_home].append(cpu_per_event * 1e6)
            print(
                f"run {run}: baseline {base_rates[-1]:9.0f} events/s   intake {intake_rates[-1]:9.0f} events/s"
                f" ({cpu[0][-1]:.0f} µs CPU each)   intake, all re-keyed {rekeyed_rates[-1]:9.0f} events/s"
                f" ({cpu[PARTITIONS][-1]:.0f} µs CPU each)",
                flush=True,
            )
        b, i, r = (statistics.median(x) for x in (base_rates, intake_rates, rekeyed_rates))
        print(
            f"\nevents per run: {len(messages)}; runs: {args.repeat}; machine: {platform.machine()}, "
            f"{os.cpu_count()} cores, Python {platform.python_version()}; load average {os.getloadavg()[0]:.1f}"
        )
        print(f"median baseline (bare aiokafka consume+produce): {b:9.0f} events/s")
        print(f"median intake (validate + dedup table + forward), on home partitions: {i:9.0f} events/s")
        print(f"median intake, every event off its home partition (re-keyed): {r:9.0f} events/s")
        c0, c1 = statistics.median(cpu[0]), statistics.median(cpu[PARTITIONS])
        print(
            f"median worker CPU per event while intake drains: {c0:.0f} µs on home partitions, {c1:.0f} µs re-keyed "
            f"({c1 - c0:+.0f} µs, {c1 / c0:.2f}x)"
        )
        print(f"ratio intake/baseline: {i / b:.2f}; re-keyed/baseline: {r / b:.2f}; re-keyed/intake: {r / i:.2f}")
        write_json(
            args.json,
            "intake",
            {"events": len(messages), "repeat": args.repeat},
            {
                "baseline_per_s": base_rates,
                "intake_per_s": intake_rates,
                "rekeyed_per_s": rekeyed_rates,
                "median_baseline_per_s": b,
                "median_intake_per_s": i,
                "median_rekeyed_per_s": r,
                "ratio": i / b,
                "rekeyed_ratio": r / b,
                "cpu_us_per_event": c0,
                "rekeyed_cpu_us_per_event": c1,
            },
        )
    finally:
        if not args.bootstrap:
            embedded_kafka.stop(tmp / "kafka")


if __name__ == "__main__":
    main()
