"""The archive's pure core: retention arithmetic, personal-data protection, row mapping."""

import json
from datetime import UTC, datetime

import pytest

from tests.archive_feed import feed
from ticketstream.archive.batch import Batch
from ticketstream.archive.pii import ArchiveKeyError, Protector
from ticketstream.archive.retention import cutoff, parse_age
from ticketstream.archive.rows import ACCEPTED, STATE, RecordError, decode, event_row, ticket_rows
from ticketstream.settings import SettingsError, load_settings


def test_retention_ages_and_cutoffs():
    assert parse_age("3y") == (3, "y") and parse_age(" 18M ") == (18, "m") and parse_age("90d") == (90, "d")
    for bad in ("", "3", "0y", "3w", "-1y", "y3"):
        with pytest.raises(ValueError):
            parse_age(bad)
    now = datetime(2029, 11, 23, 10, 0, tzinfo=UTC)
    assert cutoff(now, "3y") == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert cutoff(datetime(2028, 2, 29, tzinfo=UTC), "1y") == datetime(2027, 2, 28, tzinfo=UTC)
    assert cutoff(datetime(2026, 3, 31, tzinfo=UTC), "1m") == datetime(2026, 2, 28, tzinfo=UTC)
    assert cutoff(now, "10d") == datetime(2029, 11, 13, 10, 0, tzinfo=UTC)
    with pytest.raises(SettingsError, match="archive_retention"):
        load_settings(environ={"TICKETSTREAM_ARCHIVE_RETENTION": "forever"})


def test_masking_keeps_nothing_personal_and_encryption_restores_it():
    record = {
        "customer": {
            "id": "C1",
            "tier": "vip",
            "name": "張三豐",
            "phone": "13812345678",
            "id_number": "110101199003071234",
        },
        "content": "我的電話13812345678一直收不到短信",
        "address": "廣東省廣州市天河區某路1號",
    }
    masked, token = Protector("mask").protect(record)
    assert token is None
    text = json.dumps(masked, ensure_ascii=False)
    for secret in ("13812345678", "張三豐", "110101199003071234", "某路1號"):
        assert secret not in text
    assert masked["customer"]["phone"] == "138****5678" and masked["customer"]["id"] == "C1"

    key = Protector.generate_key()
    protector = Protector("encrypt", key)
    masked2, token = protector.protect(record)
    assert masked2 == masked and token and "13812345678" not in token
    assert protector.reveal(masked2, token) == record
    # rotation: a new first key encrypts, the old one still decrypts
    assert Protector("encrypt", f"{Protector.generate_key()},{key}").reveal(masked2, token) == record
    with pytest.raises(ArchiveKeyError, match="does not open"):
        Protector("encrypt", Protector.generate_key()).reveal(masked2, token)
    with pytest.raises(ArchiveKeyError, match="needs archive_key"):
        Protector("encrypt")
    with pytest.raises(ArchiveKeyError, match="not a Fernet key"):
        Protector("encrypt", "not-a-key")


@pytest.mark.parametrize(
    ("raw", "code"),
    [(b"", "empty"), (b"\xff\xfe", "not_utf8"), (b"{not json", "invalid_json"), (b"[1]", "not_an_object")],
)
def test_undecodable_records_have_reason_codes(raw, code):
    with pytest.raises(RecordError) as info:
        decode(raw)
    assert info.value.code == code


def test_state_rows_ignore_unknown_fields_and_refuse_what_cannot_be_stored():
    f = feed(20)
    view = json.loads(f.messages[STATE][-1][1])
    view["a_future_field"] = {"x": 1}
    view["triage"]["another"] = [1, 2]
    rows = ticket_rows(view, Protector("mask"))
    assert rows.ticket["ticket_id"] == view["ticket_id"] and rows.ticket["status"] == view["status"]
    assert {s["stage"] for s in rows.stages} == {s["stage"] for s in view["stages"]}
    for broken, message in (
        ({**view, "ticket_id": None}, "ticket_id"),
        ({**view, "ticket_id": "x" * 300}, "longer"),
        ({**view, "received_at": "2026-03-02T10:00:00"}, "UTC offset"),
    ):
        with pytest.raises(RecordError, match=message) as info:
            ticket_rows(broken, Protector("mask"))
        assert info.value.code == "schema_invalid"
    with pytest.raises(RecordError, match="occurred_at"):
        event_row({"event_id": "e", "ticket_id": "t", "type": "ticket.closed"}, Protector("mask"))


def test_state_version_never_decreases_along_a_ticket_and_a_batch_keeps_the_newest():
    f = feed(60)
    versions: dict[str, list[int]] = {}
    for key, value in f.messages[STATE]:
        versions.setdefault(key.decode(), []).append(
            ticket_rows(json.loads(value), Protector("mask")).ticket["state_version"]
        )
    assert all(v == sorted(v) for v in versions.values())
    assert sum(len(set(v)) for v in versions.values()) > len(versions)  # the version does move
    batch = Batch(Protector("mask"))
    for _key, value in reversed(f.messages[STATE]):  # oldest last: must still keep the newest
        batch.add(STATE, value)
    assert batch.finish() == []
    for tid, final in f.final.items():
        assert batch.tickets[tid].ticket["status"] == final["status"]
        assert batch.tickets[tid].ticket["event_count"] == len(final["events"])


def test_batch_skips_records_older_than_retention():
    f = feed(20)
    batch = Batch(Protector("mask"), not_before=datetime(2030, 1, 1, tzinfo=UTC))
    for _, value in f.messages[STATE][:5] + f.messages[ACCEPTED][:5]:
        batch.add(STATE if b'"stages"' in value else ACCEPTED, value)
    batch.finish()
    # each event, and each ticket's newest state (older states in a batch are superseded, not mapped)
    assert not batch and batch.expired == 5 + len({k for k, _ in f.messages[STATE][:5]})


def test_feed_schemas_are_exported_and_describe_the_real_records(tmp_path):
    from ticketstream.schemas.feed import SlaEventRecord, TicketState
    from ticketstream.workers.cli import main

    assert main(["schema", "export", str(tmp_path)]) == 0
    names = {p.name for p in (tmp_path / "topics").iterdir()}
    assert names == {f"{t}.schema.json" for t in ("tickets.state", "tickets.accepted", "sla.events", "incidents")}
    state = json.loads((tmp_path / "topics" / "tickets.state.schema.json").read_text())
    assert {"ticket_id", "status", "events", "stages", "triage"} <= set(state["required"])
    f = feed(30)
    for _, value in f.messages[STATE]:
        TicketState.model_validate_json(value)
    for _, value in f.messages["sla.events"]:
        SlaEventRecord.model_validate_json(value)
