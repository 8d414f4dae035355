import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.factories import lifecycle, received
from ticketstream.schemas.events import ComplaintReceivedData, Event, EventType, Grade
from ticketstream.schemas.export import export_schemas


def test_a_valid_complaint_parses():
    event = Event.model_validate(received())
    assert event.type is EventType.COMPLAINT_RECEIVED
    assert isinstance(event.data, ComplaintReceivedData)
    assert event.complaint.region.city == "廣州"
    assert event.occurred_at.utcoffset().total_seconds() == 8 * 3600


def test_naive_timestamps_are_rejected():
    with pytest.raises(ValidationError, match="timezone"):
        Event.model_validate(received(occurred_at="2026-11-23T10:00:00"))


@pytest.mark.parametrize(
    ("event_type", "data", "ok"),
    [
        ("ticket.regraded", {"grade": "L2"}, True),
        ("ticket.regraded", {}, False),
        ("ticket.regraded", {"grade": "L5"}, False),
        ("ticket.reclassified", {"category": "technical.network_quality"}, True),
        ("ticket.reclassified", {"category": "network"}, False),
        ("ticket.assigned", {"team": "billing"}, True),
        ("ticket.assigned", {}, False),
        ("ticket.survey_completed", {"score": 5}, True),
        ("ticket.survey_completed", {"score": 6}, False),
        ("ticket.survey_completed", {"score": 0}, False),
        ("ticket.resolved", {}, True),
        ("ticket.resolved", {"reason": "已處理", "agent": "A1", "note": "n"}, True),
        ("ticket.closed", {}, True),
    ],
)
def test_lifecycle_data_requirements(event_type, data, ok):
    raw = lifecycle(event_type, **data)
    if ok:
        event = Event.model_validate(raw)
        if event_type == "ticket.regraded":
            assert event.data.grade is Grade.L2
    else:
        with pytest.raises(ValidationError):
            Event.model_validate(raw)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e["data"].update(channel="fax"),
        lambda e: e["data"]["customer"].update(tier="gold"),
        lambda e: e["data"].update(content=""),
        lambda e: e["data"].update(content="x" * 20_001),
        lambda e: e["data"].pop("region"),
        lambda e: e.update(schema_version=2),
        lambda e: e.update(type="complaint.deleted"),
        lambda e: e.update(ticket_id=""),
        lambda e: e["data"]["customer"].update(id_number="12345"),
        lambda e: e["data"].update(service_type="satellite"),
    ],
)
def test_invalid_complaints_are_rejected(mutate):
    raw = received()
    mutate(raw)
    with pytest.raises(ValidationError):
        Event.model_validate(raw)


def test_content_limits_are_characters_not_bytes():
    Event.model_validate(received(content="斷" * 20_000))


def test_unknown_fields_are_kept_aside_not_fatal():
    raw = received()
    raw["trace"] = {"span": "abc"}
    raw["data"]["loyalty_points"] = 120
    event = Event.model_validate(raw)
    assert event.model_extra == {"trace": {"span": "abc"}}
    assert event.data.model_extra == {"loyalty_points": 120}
    again = Event.model_validate_json(event.model_dump_json())
    assert again.data.model_extra == {"loyalty_points": 120}


def test_round_trip_is_stable():
    event = Event.model_validate(received())
    assert Event.model_validate_json(event.model_dump_json(exclude_none=True)) == event


def test_schema_export_writes_one_file_per_type(tmp_path: Path):
    written = export_schemas(tmp_path)
    names = {p.name for p in written}
    assert len(names) == len(EventType) + 1
    regraded = json.loads((tmp_path / "ticket.regraded.schema.json").read_text())
    assert regraded["properties"]["type"]["const"] == "ticket.regraded"
    data_ref = regraded["properties"]["data"]["$ref"].split("/")[-1]
    assert "grade" in regraded["$defs"][data_ref]["required"]
    complaint = json.loads((tmp_path / "complaint.received.schema.json").read_text())
    assert complaint["properties"]["occurred_at"]["format"] == "date-time"
