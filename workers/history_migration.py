"""The customer history of a release before 2026-12-02, carried into `customers.history`.

That release kept each customer's recent complaints in a Faust table (`customer_history`), whose
changelog `<app_id>-customer_history-changelog` holds, per customer, the newest list of
`[ticket_id, category, epoch seconds]` entries. This release reads the history from
`customers.history` instead (`streams/customer_history.py`), so without a copy every customer
would start the upgrade with no complaints and repeats (二次投訴) would go uncounted for up to
30 days. `ticketstream topics create` (which a worker also runs at its start) copies it once:
when it creates `customers.history` and the old changelog exists.
"""

from __future__ import annotations

import logging
import time

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from ticketstream.settings import Settings
from ticketstream.topology import CUSTOMER_HISTORY

log = logging.getLogger(__name__)


def legacy_changelog(settings: Settings) -> str:
    return f"{settings.app_id}-customer_history-changelog"


def latest_histories(records: list[tuple[bytes | None, bytes | None]]) -> dict[str, list[list[object]]]:
    """Each customer's newest history from changelog records in log order (a tombstone removes
    it; a record that does not decode is skipped and logged without its content)."""
    histories: dict[str, list[list[object]]] = {}
    skipped = 0
    for key, value in records:
        try:
            customer = orjson.loads(key) if key is not None else None
            if not isinstance(customer, str):
                raise ValueError("not a customer id")
            if value is None:
                histories.pop(customer, None)
                continue
            entries = orjson.loads(value)
            if not isinstance(entries, list) or not all(isinstance(e, list) and len(e) == 3 for e in entries):
                raise ValueError("not a history")
            histories[customer] = entries
        except (ValueError, orjson.JSONDecodeError):
            skipped += 1
    if skipped:
        log.warning("customer history copy: %d record(s) of the old changelog skipped (not a history)", skipped)
    return histories


READ_TIMEOUT_S = 300.0


def copy_legacy_history(settings: Settings) -> tuple[int, int] | None:
    """Copy the old changelog's histories into `customers.history` (the caller checks that the
    changelog exists: asking for a missing topic's partitions may create it on a broker that
    creates topics on first use); (entries, customers) copied, or None when it has no partitions."""
    client = settings.kafka_client_options()
    consumer = KafkaConsumer(
        bootstrap_servers=(settings.bootstrap_servers or "").split(","),
        enable_auto_commit=False,
        consumer_timeout_ms=2000,
        **client,
    )
    try:
        topic = legacy_changelog(settings)
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return None
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records: list[tuple[bytes | None, bytes | None]] = []
        pending = {tp for tp in tps if end[tp] > consumer.position(tp)}
        deadline = time.monotonic() + READ_TIMEOUT_S
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not read {topic} to its end in {READ_TIMEOUT_S:.0f} s")
            for tp, batch in consumer.poll(timeout_ms=1000, max_records=10_000).items():
                records.extend((r.key, r.value) for r in batch)
                if consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
            pending = {tp for tp in pending if consumer.position(tp) < end[tp]}
    finally:
        consumer.close()
    histories = latest_histories(records)
    producer = KafkaProducer(bootstrap_servers=(settings.bootstrap_servers or "").split(","), acks="all", **client)
    try:
        copied = 0
        for customer, entries in histories.items():
            for entry in entries:
                producer.send(settings.topic(CUSTOMER_HISTORY), key=customer.encode(), value=orjson.dumps(entry))
                copied += 1
        producer.flush()
    finally:
        producer.close()
    log.info("copied %d history entries of %d customers from %s", copied, len(histories), topic)
    return copied, len(histories)
