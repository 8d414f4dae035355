"""`ticketstream triage corrections`: read people's corrections from `tickets.accepted`."""

from __future__ import annotations

import json
import sys
from datetime import datetime

from kafka import KafkaConsumer, TopicPartition
from pydantic import ValidationError

from ticketstream.schemas.events import Event
from ticketstream.settings import Settings, SettingsError
from ticketstream.topology import ACCEPTED
from ticketstream.triage.corrections import CorrectionCollector


def export_corrections(settings: Settings, since: datetime | None, until: datetime | None, out: str | None) -> int:
    """Scan `tickets.accepted` from its beginning to its current end and write one labelled JSON
    line per corrected ticket (to `out`, or stdout); progress goes to stderr."""
    assert settings.bootstrap_servers
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        enable_auto_commit=False,
        consumer_timeout_ms=2000,
        **settings.kafka_client_options(),
    )
    topic = settings.topic(ACCEPTED)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not parts:
            raise SettingsError(f"topic {topic} does not exist: run `ticketstream topics create`")
        end = consumer.end_offsets(parts)
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        collector = CorrectionCollector(since, until)
        total, read, skipped = sum(end.values()), 0, 0
        remaining = {tp for tp in parts if end[tp] > consumer.position(tp)}
        while remaining:
            batch = consumer.poll(timeout_ms=2000, max_records=5000)
            if not batch:
                break
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= end[tp]:
                        remaining.discard(tp)
                        continue
                    read += 1
                    try:
                        collector.see(Event.model_validate_json(record.value))
                    except (ValidationError, ValueError):
                        skipped += 1
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
            if sys.stderr.isatty():
                print(f"\r{read}/{total} events read", end="", file=sys.stderr)
    finally:
        consumer.close()
    examples, missing = collector.examples()
    sink = open(out, "w", encoding="utf-8") if out else sys.stdout  # noqa: SIM115
    try:
        for row in examples:
            sink.write(json.dumps(row, ensure_ascii=False) + "\n")
    finally:
        if out:
            sink.close()
    print(
        f"\r{read} event(s) read from {topic}; {len(examples)} corrected ticket(s) written"
        + (f"; {missing} correction(s) without their complaint (past retention)" if missing else "")
        + (f"; {skipped} unreadable record(s)" if skipped else ""),
        file=sys.stderr,
    )
    return 0
