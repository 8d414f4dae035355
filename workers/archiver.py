"""The archiver (`ticketstream archive`): a kafka-python consumer group that writes
`tickets.state`, `tickets.accepted`, `sla.events` and `incidents` into the archive database.

Exactly once in effect, at least once in delivery: records are mapped and written in batches,
one database transaction per batch, and the group's offsets are committed only after that
transaction committed. A crash (kill -9) between the two re-delivers the batch, and the store's
upserts (keyed by ticket id, event id, SLA event id, incident id; newest state wins) make the
second write a no-op. A record that cannot be stored goes to `tickets.dlq` with a reason before
the offsets move, and the archiver goes on. A database that is down is not a bad record: the
batch is retried with back-off and nothing is committed until it is written.

Personal data never reaches the log: log lines name topics, partitions, offsets and reason codes.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import CommitFailedError, KafkaError
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from ticketstream.archive.batch import Batch
from ticketstream.archive.pii import Protector
from ticketstream.archive.retention import cutoff
from ticketstream.archive.rows import RecordError
from ticketstream.archive.store import TABLES, Store, redacted
from ticketstream.intake import dead_letter, key_text
from ticketstream.schemas.deadletter import Reason, ReasonCode, Source
from ticketstream.settings import Settings
from ticketstream.topology import ACCEPTED, DLQ, INCIDENTS, SLA_EVENTS, STATE

log = logging.getLogger("ticketstream.archiver")

TOPICS = (STATE, ACCEPTED, SLA_EVENTS, INCIDENTS)
STAGE = "archive"

ROWS = Counter(
    "ticketstream_archive_rows", "Rows written to the archive, by table (upserts, including no-op ones).", ["table"]
)
RECORDS = Counter("ticketstream_archive_records", "Records read by the archiver, by topic.", ["topic"])
FAILURES = Counter(
    "ticketstream_archive_failures",
    "Archiver failures: dead-lettered records by reason code, and database retries (reason=database).",
    ["reason"],
)
EXPIRED = Counter("ticketstream_archive_expired", "Records older than the retention period, not archived.")
LAG = Gauge("ticketstream_archive_lag_messages", "Messages the archiver has not yet archived, by topic.", ["topic"])
LAST_COMMIT = Gauge(
    "ticketstream_archive_last_commit_timestamp_seconds",
    "When the archiver last committed a batch (database and offsets).",
)
BATCH_SECONDS = Histogram(
    "ticketstream_archive_batch_seconds",
    "Time to map and write one batch and commit it.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def _initialise() -> None:
    for table in TABLES:
        ROWS.labels(table=table)
    for topic in TOPICS:
        RECORDS.labels(topic=topic)
        LAG.labels(topic=topic)
    for code in ReasonCode:
        FAILURES.labels(reason=code.value)
    FAILURES.labels(reason="database")


def transient(exc: BaseException) -> bool:
    """A database error that says nothing about the records (connection lost, locked, server
    shutting down): retry the batch. Anything else is blamed on a record and isolated."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class Archiver:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        protector: Protector,
        stop: threading.Event | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.store = store
        self.protector = protector
        self.stop = stop or threading.Event()
        self.now = now
        self.names = {settings.topic(t): t for t in TOPICS}
        self.dead_letters = 0
        self.consumer: KafkaConsumer | None = None
        self.producer: KafkaProducer | None = None

    def _connect(self) -> None:
        servers = (self.settings.bootstrap_servers or "").split(",")
        options = self.settings.kafka_client_options()
        self.consumer = KafkaConsumer(
            *self.names,
            bootstrap_servers=servers,
            group_id=f"{self.settings.app_id}-archiver",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.archive_batch_size,
            # A crashed archiver's partitions move after 10 s (kafka-python 3 waits 45 s by default,
            # as Kafka's Java client does), the same failover time as the workers'.
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
            max_poll_interval_ms=600_000,
            **options,
        )
        self.producer = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=5, **options)

    def run(self, max_idle_seconds: float | None = None) -> None:
        """Archive until stopped (SIGTERM/SIGINT), or after `max_idle_seconds` without records."""
        _initialise()
        self._connect()
        assert self.consumer is not None
        idle_since = time.monotonic()
        try:
            while not self.stop.is_set():
                polled = self.consumer.poll(timeout_ms=500, max_records=self.settings.archive_batch_size)
                records = [r for batch in polled.values() for r in batch]
                if records:
                    self.process(records)
                    idle_since = time.monotonic()
                elif max_idle_seconds is not None and time.monotonic() - idle_since > max_idle_seconds:
                    break
                self._update_lag()
        finally:
            self.close()

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
        if self.producer is not None:
            self.producer.flush(timeout=10)
            self.producer.close(timeout=10)

    def _update_lag(self) -> None:
        assert self.consumer is not None
        lag: dict[str, int] = dict.fromkeys(TOPICS, 0)
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = self.consumer.position(tp, timeout_ms=1000)
            except KafkaError:
                continue
            if position is not None:
                lag[self.names[tp.topic]] += max(0, high - position)
        for topic, value in lag.items():
            LAG.labels(topic=topic).set(value)

    # -- one batch ------------------------------------------------------------------------------
    def _batch(self) -> Batch:
        return Batch(self.protector, not_before=cutoff(self.now(), self.settings.archive_retention))

    def process(self, records: list[Any]) -> None:
        started = time.perf_counter()
        batch = self._batch()
        mapped: list[Any] = []
        read: dict[str, int] = dict.fromkeys(TOPICS, 0)
        for record in records:
            topic = self.names[record.topic]
            read[topic] += 1
            if record.value is None:  # a tombstone on the compacted state topic: nothing to archive
                continue
            try:
                batch.add(topic, record.value, record.partition, record.offset, ref=record)
                mapped.append(record)
            except RecordError as exc:
                self._dead_letter(record, exc.code, exc.message)
        for record, exc in batch.finish():
            self._dead_letter(record, exc.code, exc.message)
            mapped.remove(record)
        for topic, count in read.items():
            RECORDS.labels(topic=topic).inc(count)
        self._write(batch, mapped)
        EXPIRED.inc(batch.expired)
        self._flush_dead_letters()
        self._commit()
        BATCH_SECONDS.observe(time.perf_counter() - started)

    def _write(self, batch: Batch, mapped: list[Any]) -> None:
        delay = 0.5
        while True:
            try:
                for table, count in self.store.write(batch).items():
                    ROWS.labels(table=table).inc(count)
                return
            except SQLAlchemyError as exc:
                if not transient(exc):
                    self._isolate(mapped)
                    return
                FAILURES.labels(reason="database").inc()
                log.warning(
                    "archive database unavailable (%s); retrying the batch in %.1f s", type(exc).__name__, delay
                )
                if self.stop.wait(delay):
                    raise SystemExit(1) from None  # stopping: nothing committed, the batch comes again
                delay = min(delay * 2, 30)

    def _isolate(self, mapped: list[Any]) -> None:
        """The database refused the batch: write record by record, dead-letter the ones it refuses."""
        for record in mapped:
            single = self._batch()
            single.add(self.names[record.topic], record.value, record.partition, record.offset)
            single.finish()
            try:
                for table, count in self.store.write(single).items():
                    ROWS.labels(table=table).inc(count)
            except SQLAlchemyError as exc:
                if transient(exc):
                    raise
                # The class name only: database messages can quote the row, personal data included.
                self._dead_letter(
                    record,
                    ReasonCode.PROCESSING_ERROR.value,
                    f"the archive database refused the record ({type(exc).__name__})",
                )

    def _dead_letter(self, record: Any, code: str, message: str) -> None:
        assert self.producer is not None
        raw = record.value or b""
        parsed = None
        try:
            parsed = json.loads(raw)
            parsed = parsed if isinstance(parsed, dict) else None
        except ValueError:
            pass
        letter = dead_letter(
            raw,
            Reason(code=ReasonCode(code), message=message),
            Source(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                timestamp_ms=record.timestamp,
                key=key_text(record.key),
            ),
            stage=STAGE,
            parsed=parsed,
            mask_original=self.settings.dlq_original == "masked",
        )
        self.producer.send(self.settings.topic(DLQ), key=letter.id.encode(), value=letter.model_dump_json().encode())
        FAILURES.labels(reason=code).inc()
        self.dead_letters += 1
        log.warning("dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, code)

    def _flush_dead_letters(self) -> None:
        """Dead letters must be on the broker before the offsets that skip their records move."""
        assert self.producer is not None
        self.producer.flush(timeout=30)

    def _commit(self) -> None:
        assert self.consumer is not None
        try:
            self.consumer.commit()
            LAST_COMMIT.set(time.time())
        except CommitFailedError:
            # The group rebalanced while we wrote: the new owner re-reads these records and the
            # upserts make that harmless.
            log.warning("offset commit failed after a rebalance; the batch will be re-read (idempotent)")


def run_archiver(settings: Settings, max_idle_seconds: float | None = None) -> Archiver:
    """Migrate the archive to the newest schema, then archive until SIGTERM/SIGINT."""
    protector = Protector(
        settings.archive_pii, settings.archive_key.get_secret_value() if settings.archive_key else None
    )
    store = Store.open(settings.archive_url)
    revision = store.migrate()
    log.info(
        "archiving %s into %s (schema %s, personal data %s)",
        ", ".join(settings.topic(t) for t in TOPICS),
        redacted(settings.archive_url),
        revision,
        settings.archive_pii,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    archiver = Archiver(settings, store, protector, stop)
    archiver.run(max_idle_seconds)
    return archiver
