"""`ticketstream topics copy-history`: the customer history of a release before 2026-12-02,
carried into `customers.history`.

That release kept each customer's recent complaints in a Faust table (`customer_history`), whose
changelog `<app_id>-customer_history-changelog` holds, per customer, the newest list of
`[ticket_id, category, epoch seconds]` entries (key and value in Faust's JSON). This release reads
the history from `customers.history` instead (`streams/customer_history.py`), so without a copy
every customer would start the upgrade with no complaints and repeats (二次投訴) would go
uncounted for up to 30 days. Run it after the old workers have stopped (their last triages are
then in the changelog) and before the new ones start. Running it again is harmless: every copy
of the history merges entries by ticket id, so an entry sent twice counts once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from ticketstream.settings import Settings
from ticketstream.topology import CUSTOMER_HISTORY

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 600.0


def legacy_changelog(settings: Settings) -> str:
    return f"{settings.app_id}-customer_history-changelog"


class Histories:
    """Each customer's newest history from changelog records in log order (a tombstone removes
    it; a record that does not decode is counted in `skipped`, its content never logged)."""

    def __init__(self) -> None:
        self.by_customer: dict[str, list[list[object]]] = {}
        self.skipped = 0

    def fold(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        for key, value in records:
            try:
                customer = orjson.loads(key) if key is not None else None
                if not isinstance(customer, str):
                    raise ValueError("not a customer id")
                if value is None:
                    self.by_customer.pop(customer, None)
                    continue
                entries = orjson.loads(value)
                if not isinstance(entries, list) or not all(isinstance(e, list) and len(e) == 3 for e in entries):
                    raise ValueError("not a history")
                self.by_customer[customer] = entries
            except (ValueError, orjson.JSONDecodeError):
                self.skipped += 1


def copy_legacy_history(settings: Settings, say: Callable[[str], None] = log.info) -> tuple[int, int]:
    """Copy the old changelog's histories into `customers.history`; (entries, customers) copied."""
    servers = (settings.bootstrap_servers or "").split(",")
    client = {**settings.kafka_client_options(), **settings.kafka_connect_options()}
    topic = legacy_changelog(settings)
    histories = Histories()
    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, **client)
    try:
        topics = consumer.topics()
        if topic not in topics:
            raise RuntimeError(f"topic {topic} does not exist: nothing to copy (is the app id right?)")
        if settings.topic(CUSTOMER_HISTORY) not in topics:  # a send would create it with the broker's defaults
            raise RuntimeError(
                f"topic {settings.topic(CUSTOMER_HISTORY)} does not exist: run `ticketstream topics create` first"
            )
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        pending = {tp for tp in tps if consumer.position(tp) < end[tp]}
        deadline = reported = time.monotonic()
        deadline += READ_TIMEOUT_S
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not read {topic} to its end in {READ_TIMEOUT_S:.0f} s")
            for batch in consumer.poll(timeout_ms=1000, max_records=10_000).values():
                histories.fold((r.key, r.value) for r in batch)
            pending = {tp for tp in pending if consumer.position(tp) < end[tp]}
            if time.monotonic() - reported > 5:
                reported = time.monotonic()
                say(f"read {sum(consumer.position(tp) for tp in tps)} of {sum(end.values())} records of {topic}")
    finally:
        consumer.close()
    if histories.skipped:
        say(f"skipped {histories.skipped} record(s) of {topic} that are not a customer's history")
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=20, **client)
    failures: list[BaseException] = []
    sent = 0
    try:
        for customer, entries in histories.by_customer.items():
            for entry in entries:
                future = producer.send(
                    settings.topic(CUSTOMER_HISTORY), key=customer.encode(), value=orjson.dumps(entry)
                )
                future.add_errback(failures.append)
                sent += 1
        producer.flush()
    finally:
        producer.close()
    if failures:  # a copy reported done is done: say what failed (running it again is safe)
        raise RuntimeError(f"{len(failures)} of {sent} entries were not written: {type(failures[0]).__name__}")
    return sent, len(histories.by_customer)
