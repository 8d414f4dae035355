import json
from collections import Counter
from datetime import UTC, datetime

from ticketstream import intake
from ticketstream.schemas.events import Category, Channel
from ticketstream.simulation import CATEGORY_WEIGHTS, TEMPLATES, Shares, Simulator

START = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def messages(seed=7, rate=100.0, duration=30.0, **kw):
    return list(Simulator(START, rate=rate, seed=seed, **kw).schedule(duration))


def test_same_seed_same_traffic():
    a = [(m.at, m.key, m.value) for m in messages(seed=3, duration=5)]
    b = [(m.at, m.key, m.value) for m in messages(seed=3, duration=5)]
    assert a == b
    assert a != [(m.at, m.key, m.value) for m in messages(seed=4, duration=5)]


def test_traffic_covers_every_path():
    msgs = messages()
    kinds = Counter(m.kind for m in msgs)
    assert {"valid", "malformed", "duplicate", "out_of_order", "late"} <= set(kinds)
    assert [m.at for m in msgs] == sorted(m.at for m in msgs)  # in send order
    complaints = []
    for m in msgs:
        if m.kind == "malformed":
            try:
                intake.parse_event(m.value, m.key)
            except intake.Rejected:
                continue
            raise AssertionError("a malformed message was accepted")
        event = intake.parse_event(m.value, m.key)  # every other message is valid
        if event.type == "complaint.received":
            complaints.append(event.complaint)
    assert {c.channel for c in complaints} == set(Channel)
    assert len({c.region.city for c in complaints}) >= 15
    assert {c.customer.tier.value for c in complaints} == {"ordinary", "vip", "enterprise"}
    texts = " ".join(c.content for c in complaints)
    assert "网" in texts and "網" in texts  # both scripts
    repeaters = Counter(c.customer.id for c in complaints)
    assert sum(1 for n in repeaters.values() if n >= 3) >= 5


def test_lifecycles_follow_their_complaint_and_end_closed():
    msgs = [m for m in messages(duration=10, shares=Shares(out_of_order=0, late=0, duplicate=0, malformed=0))]
    order: dict[str, list[str]] = {}
    for m in msgs:
        body = json.loads(m.value)
        order.setdefault(body["ticket_id"], []).append(body["type"])
    for types in order.values():
        assert types[0] == "complaint.received"
        assert types[-1] == "ticket.closed"
        assert "ticket.resolved" in types


def test_every_category_has_templates_and_weight():
    assert set(TEMPLATES) == set(Category) == set(CATEGORY_WEIGHTS)


def test_incident_burst_is_in_one_city():
    sim = Simulator(START, rate=5, seed=1, lifecycle=False)
    sim.inject_incident("廣州", at=5, duration=20, count=200)
    cities = Counter()
    for m in sim.schedule(30):
        if m.kind in ("valid", "incident"):
            cities[json.loads(m.value)["data"]["region"]["city"]] += 1
    assert cities["廣州"] >= 200
    assert sum(cities.values()) < 200 + 5 * 30 * 2
