"""Intake's decision on any byte string: a valid event or a dead-letter record, never an exception."""

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import encode, lifecycle, received
from ticketstream import intake
from ticketstream.schemas.deadletter import DeadLetter, ReasonCode, Source

SOURCE = Source(topic="tickets.inbound", partition=3, offset=42, key="T-1")


def reject(raw: bytes, key: bytes | None = b"T-1") -> intake.Rejected:
    with pytest.raises(intake.Rejected) as err:
        intake.parse_event(raw, key)
    return err.value


def test_valid_event_is_accepted():
    event = intake.parse_event(encode(received()), b"T-1")
    assert event.ticket_id == "T-1"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", ReasonCode.EMPTY),
        (b"\xff\xfe\x00garbage", ReasonCode.NOT_UTF8),
        (b'{"event_id": "x", ', ReasonCode.INVALID_JSON),
        (b"[1, 2, 3]", ReasonCode.NOT_AN_OBJECT),
        (b'"just a string"', ReasonCode.NOT_AN_OBJECT),
        (b"null", ReasonCode.NOT_AN_OBJECT),
        (b"{}", ReasonCode.SCHEMA_INVALID),
        (b"[" * 100_000, ReasonCode.INVALID_JSON),
        (b" " * (intake.MAX_EVENT_BYTES + 1), ReasonCode.TOO_LARGE),
    ],
)
def test_each_kind_of_bad_input_has_its_reason(raw, code):
    assert reject(raw).reason.code is code


def test_unsupported_schema_version():
    raw = received()
    raw["schema_version"] = 7
    assert reject(encode(raw)).reason.code is ReasonCode.UNSUPPORTED_SCHEMA_VERSION


def test_schema_errors_name_the_fields_without_personal_data():
    raw = received()
    raw["data"]["customer"]["phone"] = "13812345678 call me"  # invalid phone characters
    raw["data"]["channel"] = "fax"
    rejected = reject(encode(raw))
    assert rejected.reason.code is ReasonCode.SCHEMA_INVALID
    locs = {e.loc for e in rejected.reason.errors}
    assert {"data.channel", "data.customer.phone"} <= locs
    text = rejected.reason.model_dump_json()
    assert "13812345678" not in text


def test_the_key_must_be_the_ticket_id():
    assert reject(encode(received()), key=b"T-2").reason.code is ReasonCode.KEY_MISMATCH
    assert reject(encode(received()), key=None).reason.code is ReasonCode.KEY_MISMATCH
    intake.parse_event(encode(received()), None, check_key=False)


def test_dead_letter_masks_personal_data_by_default():
    raw = received()
    raw["data"]["channel"] = "fax"
    raw["data"]["customer"]["id_number"] = "11010119900307123X"
    raw["data"]["content"] = "我電話13912345678，地址在天河區"
    payload = encode(raw)
    rejected = reject(payload)
    record = intake.dead_letter(payload, rejected.reason, SOURCE, parsed=rejected.parsed)
    text = record.model_dump_json()
    for secret in ("13812345678", "13912345678", "11010119900307123X", "張三"):
        assert secret not in text
    assert record.id == "intake:tickets.inbound:3:42"
    assert record.ticket_id == "T-1"
    assert record.original.masked and record.original.size == len(payload)
    assert json.loads(record.original.value)["data"]["customer"]["phone"] == "138****5678"


def test_dead_letter_raw_mode_keeps_exact_bytes_base64_when_binary():
    payload = b"\x00\x01\xffbinary"
    rejected = reject(payload)
    record = intake.dead_letter(payload, rejected.reason, SOURCE, mask_original=False)
    assert record.original.encoding == "base64"
    assert base64.b64decode(record.original.value) == payload


def test_huge_input_is_truncated_in_the_dead_letter_but_fingerprinted():
    payload = b"x" * (intake.MAX_EVENT_BYTES + 10)
    rejected = reject(payload)
    record = intake.dead_letter(payload, rejected.reason, SOURCE)
    assert record.original.truncated
    assert len(record.model_dump_json()) < 200_000
    assert record.original.size == len(payload)


def test_duplicates_and_conflicts():
    event = intake.parse_event(encode(received()), b"T-1")
    fp = intake.fingerprint(event)
    seen: dict[str, str] = {}
    assert intake.classify_repeat(seen, fp) == "new"
    seen[fp.event] = fp.content
    # The same event re-serialised with another key order is still an exact duplicate.
    reordered = json.dumps(dict(reversed(list(received().items()))), ensure_ascii=False).encode()
    assert intake.classify_repeat(seen, intake.fingerprint(intake.parse_event(reordered, b"T-1"))) == "duplicate"
    changed = received(content="完全不同的內容")
    assert intake.classify_repeat(seen, intake.fingerprint(intake.parse_event(encode(changed), b"T-1"))) == "conflict"


def test_the_same_message_read_again_is_a_redelivery_not_a_duplicate():
    """After a kill -9 the table entry may be in Kafka and the forwarded event not: the message at
    the same source coordinates is forwarded again; a re-send (other coordinates) is dropped."""
    fp = intake.fingerprint(intake.parse_event(encode(received()), b"T-1"))
    seen = {fp.event: intake.seen_entry(fp, intake.read_at("i", 3, 1220))}
    assert intake.classify_repeat(seen, fp, intake.read_at("i", 3, 1220)) == "redelivery"
    assert intake.classify_repeat(seen, fp, intake.read_at("i", 3, 1221)) == "duplicate"
    assert intake.classify_repeat(seen, fp, intake.read_at("i", 1, 1220)) == "duplicate"
    other = intake.fingerprint(intake.parse_event(encode(received(content="完全不同的內容")), b"T-1"))
    assert intake.classify_repeat(seen, other, intake.read_at("i", 3, 1220)) == "conflict"
    # the same numbers on the other topic are another message
    assert intake.classify_repeat(seen, fp, intake.read_at("k", 3, 1220)) == "duplicate"


@pytest.mark.parametrize(
    "event",
    [
        received(customer={"id": "C-9", "tier": "vip", "name": "張三"}, channel="app"),
        lifecycle("ticket.assigned", team="billing", note="轉計費"),
    ],
)
def test_the_second_hop_reads_back_what_the_first_hop_checked(event):
    """`tickets.keyed` carries the canonical form; the second hop rebuilds the same `Checked`
    from it without validating, so both paths de-duplicate and forward identically."""
    first = intake.checked(intake.parse_event(encode(event), b"T-1"))
    assert intake.from_canonical(first.body) == first
    assert first.body == intake.canonical(intake.parse_event(first.body, b"T-1"))  # canonical is a fixed point
    assert intake.fingerprint_of(first.event_id, first.body) == intake.fingerprint(
        intake.parse_event(encode(event), b"T-1")
    )
    if event["type"] == "complaint.received":
        assert (first.customer_id, first.channel) == ("C-9", "app")
    else:
        assert (first.customer_id, first.channel) == (None, None)


def _event_json() -> st.SearchStrategy[bytes]:
    """JSON objects shaped like events, with fields randomly broken or retyped."""
    scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30))
    base = st.fixed_dictionaries(
        {
            "event_id": st.one_of(st.text(min_size=1, max_size=20), scalar),
            "type": st.one_of(
                st.sampled_from(["complaint.received", "ticket.regraded", "ticket.assigned", "bogus"]), scalar
            ),
            "ticket_id": st.just("T-1"),
            "occurred_at": st.one_of(st.just("2026-11-23T10:00:00+08:00"), st.just("2026-11-23T10:00:00"), scalar),
            "schema_version": st.one_of(st.just(1), scalar),
            "data": st.one_of(
                st.just(received()["data"]), st.dictionaries(st.text(max_size=10), scalar, max_size=5), scalar
            ),
        }
    )
    return base.map(lambda d: json.dumps(d).encode())


@given(st.one_of(st.binary(max_size=2000), _event_json(), st.text(max_size=500).map(str.encode)))
def test_any_bytes_yield_an_event_or_a_dead_letter(raw):
    try:
        event = intake.parse_event(raw, b"T-1")
    except intake.Rejected as rejected:
        record = intake.dead_letter(raw, rejected.reason, SOURCE, parsed=rejected.parsed)
        assert DeadLetter.model_validate_json(record.model_dump_json()) == record
        assert record.reason.message
    else:
        assert event.ticket_id == "T-1"


def test_lifecycle_event_accepted_by_intake():
    event = intake.parse_event(encode(lifecycle("ticket.survey_completed", score=4)), b"T-1")
    assert event.data.score == 4
