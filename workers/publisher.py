"""Publishing to `tickets.inbound` for channel systems: `ticketstream publish` and the simulator.

The producer uses acks=all and keys every message by ticket id, so one ticket's events stay in
order on one partition. `publish` validates each JSON line with the very code intake uses, so a
channel system learns about a bad line at once, by line number, instead of from the dead-letter
topic later.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

from kafka import KafkaProducer
from prometheus_client import Counter

from ticketstream import intake
from ticketstream.settings import Settings
from ticketstream.topology import INBOUND

# The channel side's own metrics (served by `publish`/`simulate --metrics-port`); the workers
# count what arrives, these count what was sent, so a gap between the two is visible.
SENT = Counter(
    "ticketstream_client_sent_messages_total",
    "Messages this publisher or simulator handed to Kafka for tickets.inbound",
    ["kind"],
)
SEND_FAILURES = Counter("ticketstream_client_send_failures_total", "Messages Kafka did not accept from this client")
REJECTED_LINES = Counter(
    "ticketstream_client_rejected_lines_total",
    "Lines `publish` refused before sending, by dead-letter reason code",
    ["reason"],
)


def make_producer(settings: Settings, **overrides: object) -> KafkaProducer:
    if not settings.bootstrap_servers:
        raise RuntimeError("no Kafka bootstrap servers are configured")
    options: dict[str, object] = {
        "bootstrap_servers": settings.bootstrap_servers.split(","),
        "acks": "all",
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "max_in_flight_requests_per_connection": 1,  # keep a ticket's order through retries
        "retries": 10,
        "client_id": f"{settings.app_id}-publisher",
        **settings.kafka_client_options(),
        **settings.kafka_connect_options(),
    }
    options.update(overrides)
    return KafkaProducer(**options)


class Pacer:
    """Holds a sender to `rate` messages per second on average (None: as fast as possible)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = time.monotonic()

    def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if self.next_at > now:
            time.sleep(self.next_at - now)
        self.next_at = max(self.next_at, now - 1.0) + self.interval


@dataclass
class PublishReport:
    sent: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    failed: int = 0
    unsent: int = 0
    """Valid lines not sent because Kafka could not be reached."""

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.failed


def read_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(stream, start=1):
        line = line.strip()
        if line:
            yield number, line


def publish_lines(
    lines: Iterable[tuple[int, bytes]],
    settings: Settings,
    rate: float | None = None,
    producer: KafkaProducer | None = None,
    progress: IO[str] | None = None,
) -> PublishReport:
    """Validate and send each (line number, JSON line); rejected lines are reported, not sent."""
    report = PublishReport()
    own = producer is None
    unreachable: Exception | None = None
    if producer is None:
        try:
            producer = make_producer(settings)
        except Exception as exc:  # noqa: BLE001 - validate every line anyway, then say why nothing was sent
            from ticketstream.workers.connect import is_unreachable

            if not is_unreachable(exc):
                raise
            unreachable = exc
    topic = settings.topic(INBOUND)
    pacer = Pacer(rate)

    def failed(_exc: BaseException) -> None:
        report.failed += 1
        SEND_FAILURES.inc()

    try:
        for number, raw in lines:
            try:
                event = intake.parse_event(raw, check_key=False)
            except intake.Rejected as rejected:
                report.rejected.append((number, f"{rejected.reason.code.value}: {rejected.reason.message}"))
                REJECTED_LINES.labels(reason=rejected.reason.code.value).inc()
                if progress:
                    print(
                        f"line {number}: rejected: {rejected.reason.code.value}: {rejected.reason.message}",
                        file=progress,
                    )
                continue
            if producer is None:  # Kafka unreachable: only validating
                report.unsent += 1
                continue
            pacer.wait()
            producer.send(topic, key=event.ticket_id.encode("utf-8"), value=raw).add_errback(failed)
            report.sent += 1
            SENT.labels(kind="event").inc()
            if progress and report.sent % 10_000 == 0:
                print(f"... {report.sent} sent", file=progress, flush=True)
        if producer is not None:
            producer.flush()
    finally:
        if own and producer is not None:
            producer.close()
    if unreachable is not None:
        from ticketstream.workers.connect import BrokerUnreachable

        raise PublishUnreachable(report, BrokerUnreachable(settings.bootstrap_servers, type(unreachable).__name__))
    report.sent -= report.failed
    return report


class PublishUnreachable(RuntimeError):
    """Kafka could not be reached: every line was validated, none sent (`report.unsent` were valid)."""

    def __init__(self, report: PublishReport, cause: Exception) -> None:
        super().__init__(str(cause))
        self.report = report
        self.cause = cause


def publish_file(path: str, settings: Settings, rate: float | None = None) -> PublishReport:
    if path == "-":
        return publish_lines(read_lines(sys.stdin.buffer), settings, rate, progress=sys.stderr)
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        from ticketstream.settings import SettingsError

        raise SettingsError(
            f"{path}: cannot read ({exc.strerror}); give an existing file, or - for standard input"
        ) from None
    with fh:
        return publish_lines(read_lines(fh), settings, rate, progress=sys.stderr)
