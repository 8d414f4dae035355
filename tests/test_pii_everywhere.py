"""Personal data (DOMAIN §8) never leaves the record path in clear: every dead-letter path masks
it (names too, on undecodable and oversized inputs), work queues carry the phone but not the
national ID number, and a worker fed seeded personal data leaves none of it on any other topic
or changelog, in its log or on /metrics."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.factories import encode, received
from tests.harness import TopicReader, isolated_settings, metric_value, wait_until, worker_process
from ticketstream import intake
from ticketstream.privacy import mask_keyed_text
from ticketstream.schemas.deadletter import ReasonCode, Source
from ticketstream.schemas.events import Event
from ticketstream.topology import ACCEPTED, DLQ, INBOUND, KEYED, STATE, TABLE_TICKETS, TRIAGED
from ticketstream.workers.topics import all_topics, create_topics

NAME, PHONE, ID_NUMBER, STREET = "歐陽明珠", "13912345678", "110101199003071234", "體育西路191號"
SECRETS = (NAME, PHONE, ID_NUMBER, STREET)
SOURCE = Source(topic="tickets.inbound", partition=0, offset=7)


def seeded(ticket_id: str, content: str | None = None) -> dict:
    return received(
        ticket_id,
        customer={
            "id": f"C-{ticket_id}",
            "tier": "ordinary",
            "name": NAME,
            "phone": PHONE,
            "id_number": ID_NUMBER,
            "address": f"廣東省廣州市天河區{STREET}",
        },
        content=content or f"寬帶斷網三天了，回電{PHONE}，身份證{ID_NUMBER}",
    )


def forms(secret: str) -> list[bytes]:
    """How a secret can appear in bytes: UTF-8, or JSON-escaped (ensure_ascii)."""
    return [secret.encode(), json.dumps(secret).strip('"').encode()]


def leaked(data: bytes, secrets=SECRETS) -> list[str]:
    return [s for s in secrets if any(f in data for f in forms(s))]


def dead_letter_of(payload: bytes, key: bytes | None = b"T-1", mask: bool = True):
    try:
        intake.parse_event(payload, key)
    except intake.Rejected as rejected:
        return intake.dead_letter(payload, rejected.reason, SOURCE, parsed=rejected.parsed, mask_original=mask)
    raise AssertionError("expected a rejection")


@pytest.mark.parametrize(
    "variant", ["not_utf8", "too_large", "invalid_json", "schema_invalid", "key_mismatch", "binary"]
)
def test_every_dead_letter_path_masks_names_phones_ids_and_addresses(variant):
    body = encode(seeded("T-1"))
    payload, expected = {
        "not_utf8": (body.replace("寬帶".encode(), b"\xff\xfe"), ReasonCode.NOT_UTF8),
        "too_large": (encode(seeded("T-1", content="斷網" * 50_000)), ReasonCode.TOO_LARGE),
        "invalid_json": (body[: body.index(b'"content"')], ReasonCode.INVALID_JSON),
        "schema_invalid": (body.replace(b'"hotline"', b'"fax"'), ReasonCode.SCHEMA_INVALID),
        "key_mismatch": (body, ReasonCode.KEY_MISMATCH),
        "binary": (b"\xff\xfe\x00" + NAME.encode("utf-16-le") + NAME.encode() + b"\x80", ReasonCode.NOT_UTF8),
    }[variant]
    record = dead_letter_of(payload, key=b"OTHER" if variant == "key_mismatch" else b"T-1")
    assert record.reason.code is expected
    assert leaked(record.model_dump_json().encode()) == []
    assert record.original.masked and record.original.size == len(payload)
    if variant == "binary":  # nothing decodes: hash and length only
        assert record.original.omitted and record.original.value == ""
    elif variant in ("not_utf8", "too_large"):  # what decodes is masked by field, and kept
        assert NAME[0] + "***" in record.original.value and "139****5678" in record.original.value


def test_raw_mode_keeps_the_bytes_when_configured():
    payload = encode(seeded("T-1")).replace("寬帶".encode(), b"\xff\xfe")
    record = dead_letter_of(payload, mask=False)
    assert not record.original.masked and record.original.encoding == "base64"


def test_broken_json_is_masked_by_key_even_when_cut_inside_a_value():
    text = '{"customer": {"name": "歐陽明珠", "phone": 13912345678, "id_number": "1101011990030'
    masked = mask_keyed_text(text)
    assert leaked(masked.encode()) == [] and "1101011990030" not in masked
    assert '"name": "歐***"' in masked


def test_work_queue_copy_keeps_the_phone_and_drops_the_id_number():
    from ticketstream.engines import triage_engine
    from ticketstream.schemas.tickets import TRIAGED
    from ticketstream.settings import Settings
    from ticketstream.workqueue import work_queue_copy

    record, _ = triage_engine(Settings()).triage(Event.model_validate(seeded("T-9")), [])
    queued = TRIAGED.dump_json(work_queue_copy(record))
    assert leaked(queued, (ID_NUMBER,)) == []
    assert PHONE.encode() in queued and NAME.encode() in queued
    assert ID_NUMBER.encode() in TRIAGED.dump_json(record)  # the record itself is untouched


# ---- the whole worker on a real broker -------------------------------------------------------

RECORD_TOPICS = (INBOUND, KEYED, ACCEPTED, TRIAGED, STATE)
"""Where personal data belongs: the input itself, the audit history, the triaged record and the
ticket state (plus `tickets.keyed`, intake's re-keying of inbound events that arrived off their
ticket's home partition: the same records, the same access). `customers.history` is checked
like every other topic: it holds customer ids, ticket ids and categories only."""


def read_all(bootstrap: str, topic: str) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or ())]
        if not parts:
            return []
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        records: list = []
        wait_until(
            lambda: (
                records.extend(r for batch in consumer.poll(timeout_ms=300).values() for r in batch)
                or all(consumer.position(p) >= ends[p] for p in parts)
            ),
            30,
            f"all of {topic}",
        )
        return records
    finally:
        consumer.close()


@pytest.mark.integration
def test_seeded_personal_data_stays_on_the_record_topics(bootstrap, tmp_path: Path):
    settings = isolated_settings(bootstrap, tmp_path)
    create_topics(settings)
    good = encode(seeded("PII-1"))
    body2 = encode(seeded("PII-2"))
    inputs = [
        (b"PII-1", good),
        (b"PII-1", encode({**seeded("PII-1"), "occurred_at": "2026-11-23T10:05:00+08:00"})),  # conflicting duplicate
        (b"PII-2", body2.replace("寬帶".encode(), b"\xff\xfe")),  # not_utf8
        (b"PII-3", encode(seeded("PII-3", content="斷網" * 50_000))),  # too_large
        (b"PII-4", body2[: body2.index(b'"content"')]),  # invalid_json
        (b"PII-5", encode(seeded("PII-5")).replace(b'"hotline"', b'"fax"')),  # schema_invalid
        (b"WRONG", encode(seeded("PII-6"))),  # key_mismatch
        (b"PII-7", b"\xff\xfe" + NAME.encode() + PHONE.encode()),  # binary
    ]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2_000_000)
    for key, value in inputs:
        producer.send(settings.topic(INBOUND), key=key, value=value)
    producer.flush()
    producer.close()
    log = tmp_path / "worker.log"
    with worker_process(settings, log):
        wait_until(
            lambda: metric_value(settings, "ticketstream_intake_processing_seconds_count") >= len(inputs),
            90,
            "intake to see every input",
        )
        dlq, state = TopicReader(settings, settings.topic(DLQ)), TopicReader(settings, settings.topic(STATE))
        dlq.read_until(len(inputs) - 1, 30)
        state.read_until(1, 60)
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/metrics", timeout=5) as resp:
            metrics_text = resp.read()
    assert leaked(metrics_text) == []
    assert leaked(log.read_bytes()) == [], log.read_text()[-2000:]
    designated = {settings.topic(t) for t in RECORD_TOPICS} | {f"{settings.app_id}-{TABLE_TICKETS}-changelog"}
    scanned = []
    for topic, _ in all_topics(settings):
        if topic in designated:
            continue
        records = read_all(bootstrap, topic)
        scanned.append((topic, len(records)))
        for record in records:
            for data in (record.key or b"", record.value or b""):
                secrets = (ID_NUMBER,) if topic.startswith(settings.topic("queue.")) else SECRETS
                assert leaked(data, secrets) == [], f"{topic} @{record.partition}:{record.offset}"
    counts = dict(scanned)
    assert counts[settings.topic(DLQ)] == len(inputs) - 1
    assert sum(n for t, n in counts.items() if t.startswith(settings.topic("queue."))) >= 1
