"""Helpers for integration tests: isolated settings, worker processes, draining topics with deadlines."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from ticketstream.settings import Settings
from ticketstream.streams.metrics import scrape
from ticketstream.workers.embedded_kafka import free_ports
from ticketstream.workers.monitoring import http_ready
from ticketstream.workers.worker import stop_process

REPO = Path(__file__).resolve().parents[1]


def isolated_settings(bootstrap: str, tmp: Path, partitions: int = 4, **extra: object) -> Settings:
    """Settings with a unique topic prefix and app id, so tests share one broker without mixing."""
    run = uuid.uuid4().hex[:8]
    return Settings(
        bootstrap_servers=bootstrap,
        topic_prefix=f"t{run}.",
        app_id=f"ts-test-{run}",
        partitions=partitions,
        web_port=free_ports(1)[0],
        data_dir=tmp / f"worker-{run}",
        **extra,  # type: ignore[arg-type]
    )


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def spawn_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """Start a real `ticketstream worker` child process with these settings, output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ticketstream.workers.cli", "worker"],
            cwd=REPO,
            env=settings.as_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@contextmanager
def worker_process(settings: Settings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real `ticketstream worker` child process; stopped (SIGTERM) at the end."""
    proc = spawn_worker(settings, log)
    try:
        wait_until(lambda: proc.poll() is not None or worker_ready(settings), 60, "the worker's web port")
        if proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        yield proc
    finally:
        stop_process(proc)


def worker_ready(settings: Settings) -> bool:
    """The worker's web server answers (/healthz: alive)."""
    return http_ready(f"http://127.0.0.1:{settings.web_port}/healthz")


def worker_healthy(settings: Settings) -> bool:
    """The worker is ready (/health 200: a rebalance and its recovery done, none under way)."""
    return http_ready(f"http://127.0.0.1:{settings.web_port}/health")


def cli(
    settings: Settings, *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`ticketstream ARGS` as a child process with these settings (text output captured)."""
    return subprocess.run(
        [sys.executable, "-m", "ticketstream.workers.cli", *args],
        cwd=REPO,
        env=settings.as_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def metric_value(settings: Settings, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of a metric's samples on the worker's /metrics that carry all of `labels`."""
    value = scrape(settings.web_port, name, labels)
    assert value is not None, f"the worker on port {settings.web_port} does not serve /metrics"
    return value


class TopicReader:
    """Reads every record of one topic (all partitions, from the beginning) without a group."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers.split(","),  # type: ignore[union-attr]
            enable_auto_commit=False,
            consumer_timeout_ms=500,
            **settings.kafka_client_options(),
        )
        parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
        self.consumer.assign(parts)
        self.consumer.seek_to_beginning(*parts)
        self.records: list = []

    def poll(self) -> int:
        for batch in self.consumer.poll(timeout_ms=300, max_records=10_000).values():
            self.records.extend(batch)
        return len(self.records)

    def read_until(self, count: int, timeout: float) -> list:
        try:
            wait_until(lambda: self.poll() >= count, timeout, f"{count} records")
        except AssertionError as exc:  # say how many arrived by the deadline, not before the wait
            raise AssertionError(f"{exc} (have {len(self.records)})") from None
        return self.records

    def json_values(self) -> list[dict]:
        return [json.loads(r.value) for r in self.records]

    def close(self) -> None:
        self.consumer.close()
