"""The alert model, its builders and the bridge's decisions (no Kafka, no HTTP: a fake Alertmanager
that refuses and fails like the real one does)."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from ticketstream.oversight.alerts import mass_incident, team_overload, ticket_breach, to_alertmanager
from ticketstream.oversight.bridge import BridgeCore, PostResult
from ticketstream.schemas.alerts import Alert, parse_alert

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def breach(ticket="T1", met=None, grade="L3", team="billing", incident=None, stage="response"):
    return ticket_breach(ticket, 1, stage, grade, team, "深圳", incident, NOW, met)


# -- the model and its builders ---------------------------------------------------------------------
def test_a_stage_met_before_its_breach_instant_still_ends_after_the_alert_starts():
    # The bug that jammed the bridge: met a few milliseconds before the breach instant.
    record = breach(met=NOW - timedelta(milliseconds=3))
    alert = parse_alert(json.dumps(record))
    assert alert.status == "resolved" and alert.ends_at > alert.starts_at
    body = to_alertmanager(record)
    assert datetime.fromisoformat(body["endsAt"]) > datetime.fromisoformat(body["startsAt"])


def test_every_builder_validates_and_carries_its_routing_labels_and_an_action():
    records = [
        breach(),
        breach(met=NOW + timedelta(hours=1), incident="INC:深圳|technical:1"),
        mass_incident("INC:深圳|technical:1", "深圳", "technical", 40, 2.5, NOW.timestamp(), None),
        mass_incident(
            "INC:深圳|technical:1", "深圳", "technical", 40, 2.5, NOW.timestamp(), NOW.timestamp()
        ),  # closed at the opening instant: still ends after it starts
        team_overload("team_overload:billing:L3:response:5m:1", "billing", "L3", "response", "5m", NOW, 10, 10),
    ]
    for record in records:
        alert = Alert.model_validate(record)
        assert alert.annotations["summary"] and alert.annotations["action"]
        assert json.loads(json.dumps(record)) == record  # JSON-able as is
    assert records[1]["labels"]["incident"] == "INC:深圳|technical:1"
    assert records[0]["labels"]["severity"] == "warning" and breach(grade="L2")["labels"]["severity"] == "critical"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.update(ends_at=r["starts_at"]), "must be after starts_at"),
        (lambda r: r.update(status="resolved", ends_at=None), "needs ends_at"),
        (lambda r: r["labels"].pop("team"), r"needs the label\(s\) team"),
        (lambda r: r["labels"].pop("alertname"), "alertname"),
        (lambda r: r["labels"].update(severity="page"), "severity must be one of"),
        (lambda r: r["labels"].update({"bad-name": "x"}), "not a Prometheus label name"),
        (lambda r: r["labels"].update(city="深" * 300), "at most 256"),
        (lambda r: r["annotations"].update(summary="call 13812345678"), "personal data"),
        (lambda r: r.update(starts_at="2026-11-23T10:00:00"), "timezone"),
        (lambda r: r.update(extra=1), "Extra inputs"),
    ],
)
def test_the_model_refuses_what_alertmanager_or_privacy_would(change, message):
    record = breach()
    change(record)
    with pytest.raises(ValidationError, match=message):
        Alert.model_validate(record)


def test_a_builder_cannot_emit_an_invalid_alert():
    with pytest.raises(ValidationError):
        ticket_breach("T1", 1, "response", "L3", "billing", "", None, NOW)  # no city


# -- the bridge core --------------------------------------------------------------------------------
class FakeAlertmanager:
    """Answers like Alertmanager: 400 for a batch with an alert it refuses, 500 for a poisoned
    batch, no answer while down; records what it accepted."""

    def __init__(self):
        self.accepted: list[dict] = []
        self.refuse: set[str] = set()
        self.poison: set[str] = set()
        self.down = False
        self.posts = 0

    def __call__(self, bodies):
        self.posts += 1
        if self.down:
            return PostResult(None, "connection refused")
        tickets = {b["labels"].get("ticket") for b in bodies}
        if tickets & self.refuse:
            return PostResult(400, "start time must be before end time")
        if tickets & self.poison:
            return PostResult(500, "internal error")
        self.accepted.extend(bodies)
        return PostResult(200)


def feed(core, records, partition=0, start=0, at=1000.0):
    for i, record in enumerate(records):
        raw = record if isinstance(record, bytes) else json.dumps(record).encode()
        core.add(partition, start + i, raw, at)


def test_a_refused_alert_is_found_by_bisection_and_dead_lettered_the_rest_delivered():
    am = FakeAlertmanager()
    am.refuse = {"T13"}
    core = BridgeCore(am)
    feed(core, [breach(f"T{i}") for i in range(100)])
    core.deliver(1001.0)
    assert len(am.accepted) == 99 and am.posts <= 2 * 7 + 1
    dead = core.take_dead()
    assert [(d.offset, d.code, d.alert_id) for d in dead] == [(13, "alert_rejected", "ticket_breach:T13:1:response")]
    assert "HTTP 400" in dead[0].message and "start time" in dead[0].message
    assert core.committable() == {0: 100} and core.counts["delivered"] == 99 and core.counts["dead_lettered"] == 1


def test_an_invalid_record_is_dead_lettered_without_a_request():
    am = FakeAlertmanager()
    core = BridgeCore(am)
    bad = breach("T2")
    bad["ends_at"] = (NOW - timedelta(seconds=1)).isoformat()
    bad["status"] = "resolved"
    feed(core, [breach("T1"), bad, b"not json", breach("T3")])
    core.deliver(1001.0)
    assert [d.code for d in core.take_dead()] == ["invalid_alert", "invalid_alert"]
    assert len(am.accepted) == 2 and am.posts == 1 and core.committable() == {0: 4}


def test_unreachable_alertmanager_holds_offsets_backs_off_and_dead_letters_nothing():
    am = FakeAlertmanager()
    am.down = True
    core = BridgeCore(am, max_backoff=30)
    feed(core, [breach(f"T{i}") for i in range(5)])
    now = 1000.0
    for _ in range(50):
        core.deliver(now)
        now += 1
    assert am.posts < 10  # backed off (1, 2, 4, 8, 16, 30 s), not 50 tries
    assert core.committable() == {0: 0} and not core.take_dead()
    assert core.oldest_undelivered_age(now) == pytest.approx(now - 1000.0)
    am.down = False
    core.deliver(now + 60)
    assert len(am.accepted) == 5 and core.committable() == {0: 5} and core.oldest_undelivered_age(now) == 0


def test_a_poisoned_alert_on_one_partition_does_not_block_the_others_and_is_dead_lettered_in_the_end():
    am = FakeAlertmanager()
    am.poison = {"P0"}
    core = BridgeCore(am, max_backoff=4, dead_letter_after=5)
    feed(core, [breach("P0"), breach("P1")], partition=0)
    feed(core, [breach("Q0")], partition=1)
    now = 1000.0
    core.deliver(now)
    assert {b["labels"]["ticket"] for b in am.accepted} == {"P1", "Q0"}
    assert core.committable() == {0: 0, 1: 1}  # partition 0 waits for P0; partition 1 moves on
    for i in range(60):  # newer alerts keep flowing on both partitions while P0 backs off
        now += 1
        feed(core, [breach(f"N{i}")], partition=i % 2, start=10 + i, at=now)
        core.deliver(now)
    dead = core.take_dead()
    assert [(d.alert_id, d.code) for d in dead] == [("ticket_breach:P0:1:response", "alert_undeliverable")]
    assert len({b["labels"]["ticket"] for b in am.accepted if b["labels"]["ticket"].startswith("N")}) == 60
    assert core.committable() == {0: 69, 1: 70}


def test_only_the_newest_state_of_an_alert_is_posted_and_repeats_are_not():
    am = FakeAlertmanager()
    core = BridgeCore(am)
    feed(core, [breach("T1"), breach("T1", met=NOW + timedelta(hours=1))])
    core.deliver(1001.0)
    assert [b.get("endsAt") is not None for b in am.accepted] == [True]
    feed(core, [breach("T1", met=NOW + timedelta(hours=1))], start=2)  # re-delivered: nothing to post
    core.deliver(1002.0)
    assert len(am.accepted) == 1 and core.counts == {
        "delivered": 1,
        "dead_lettered": 0,
        "unchanged": 1,
        "superseded": 1,
    }


def test_firing_alerts_are_re_sent_until_resolved():
    am = FakeAlertmanager()
    core = BridgeCore(am, resend_seconds=60)
    feed(core, [breach("T1"), breach("T2")])
    core.deliver(1000.0)
    core.deliver(1061.0)
    assert len(am.accepted) == 4
    feed(core, [breach("T1", met=NOW + timedelta(hours=1))], start=2)
    core.deliver(1122.0)
    assert [b["labels"]["ticket"] for b in am.accepted[4:]] == ["T1", "T2"]  # T1's resolution, T2's re-send
    assert set(core.active) == {"ticket_breach:T2:1:response"}


@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 30), st.booleans(), st.booleans()), max_size=60),
    st.sets(st.integers(0, 30), max_size=5),
)
def test_every_record_gets_exactly_one_outcome_and_commits_never_pass_an_open_one(records, refused):
    am = FakeAlertmanager()
    am.refuse = {f"T{i}" for i in refused}
    core = BridgeCore(am)
    offsets = {0: 0, 1: 0, 2: 0}
    for partition, ticket, resolved, garbage in records:
        raw = (
            b"{"
            if garbage
            else json.dumps(breach(f"T{ticket}", met=NOW + timedelta(hours=1) if resolved else None)).encode()
        )
        core.add(partition, offsets[partition], raw, 1000.0)
        offsets[partition] += 1
        for p, offset in core.committable().items():
            assert offset <= offsets[p]
    core.deliver(1001.0)
    assert sum(core.counts.values()) == len(records)
    assert core.committable() == {p: n for p, n in offsets.items() if n}
    assert not core.pending
