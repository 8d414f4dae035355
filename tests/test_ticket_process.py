"""The ticket process without a broker: the behaviour of the ticket agent and of `replay`, which
both run `TicketProcess`."""

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import lifecycle, received
from ticketstream.schemas.events import Event, Grade, Team
from ticketstream.sla.calendar import WorkCalendar
from ticketstream.sla.engine import SlaEngine, SlaKind, epoch
from ticketstream.sla.policy import load_policy
from ticketstream.tickets.process import TicketProcess
from ticketstream.tickets.state import STATE_VERSION, StateVersionError, TicketState
from ticketstream.triage.engine import TriageEngine

TRIAGE = TriageEngine()
PROCESS = TicketProcess(TRIAGE, SlaEngine(load_policy(), WorkCalendar()))
T0 = datetime.fromisoformat("2026-11-23T10:00:00+08:00")


def at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


def now(hours: float) -> float:
    return epoch(T0 + timedelta(hours=hours))


def triaged(ticket_id: str = "P-1", content: str = "家里网速有点慢，看视频卡", **extra):
    record, _ = TRIAGE.triage(
        Event.model_validate(received(ticket_id, occurred_at=T0.isoformat(), content=content, **extra)), []
    )
    return record


def event(kind: str, hours: float, ticket_id: str = "P-1", **data) -> Event:
    return Event.model_validate(
        lifecycle(kind, ticket_id, occurred_at=at(hours), event_id=f"{ticket_id}:{kind}:{hours}", **data)
    )


def test_an_assignment_relabels_every_later_sla_event():
    state = TicketState.new("P-1")
    PROCESS.on_triage(state, triaged(), now(0))
    assert state.triage.team is Team.NETWORK_OPS
    fx = PROCESS.on_lifecycle(state, event("ticket.assigned", 1, team="billing"), now(1))
    assert [r.record.team for r in fx.revisions] == [Team.BILLING] and fx.revisions[0].previous_team is Team.NETWORK_OPS
    later = PROCESS.on_tick(state, now(30))
    assert later.sla_events and {e.team for e in later.sla_events} == {"billing"}
    assert state.open_bucket == ("billing", "L3")


def test_a_reclassification_regrades_and_reroutes():
    state = TicketState.new("P-1")
    PROCESS.on_triage(state, triaged(), now(0))
    fx = PROCESS.on_lifecycle(
        state, event("ticket.reclassified", 1, category="business.tariff_billing", agent="A9"), now(1)
    )
    assert state.triage.category.value == "business.tariff_billing" and state.triage.team is Team.BILLING
    assert (
        fx.revisions[0].cause == "ticket.reclassified"
        and "reclassified business.tariff_billing by A9" in state.triage.overrides
    )
    assert fx.view["triage"]["team"] == "billing"


def test_overrides_that_arrive_before_the_triage_wait_and_apply_in_occurrence_order():
    state = TicketState.new("P-1")
    # The later assignment arrives first; both wait for the triage.
    assert PROCESS.on_lifecycle(state, event("ticket.assigned", 2, team="product"), now(2)).revisions == []
    assert PROCESS.on_lifecycle(state, event("ticket.assigned", 1, team="billing"), now(2)).revisions == []
    assert len(state.pending) == 2
    fx = PROCESS.on_triage(state, triaged(), now(2))
    assert [r.record.team for r in fx.revisions] == [Team.BILLING, Team.PRODUCT]
    assert state.triage.team is Team.PRODUCT and state.pending == [] and state.triage.revision == 3
    # A re-delivery of either changes nothing.
    again = PROCESS.on_lifecycle(state, event("ticket.assigned", 1, team="billing"), now(3))
    assert again.revisions == [] and not again.changed
    assert again.view == fx.view  # but the ticket's state goes out again: its record may have been lost


def test_the_own_revision_read_back_and_redeliveries_are_ignored():
    state = TicketState.new("P-1")
    first = PROCESS.on_triage(state, triaged(), now(0))
    assert first.changed and first.view is not None
    assert not PROCESS.on_triage(state, triaged(), now(0)).changed
    fx = PROCESS.on_lifecycle(state, event("ticket.regraded", 1, grade="L1"), now(1))
    assert not PROCESS.on_triage(state, fx.revisions[0].record, now(1)).changed


def test_a_resolution_breach_escalates_and_reroutes_and_a_person_climbs_one_tier():
    state = TicketState.new("P-1")
    PROCESS.on_triage(state, triaged(), now(0))  # L3: resolution 48 h
    fx = PROCESS.on_tick(state, now(49))
    kinds = [(e.stage, e.kind) for e in fx.sla_events]
    assert ("resolution", SlaKind.BREACH) in kinds and ("resolution", SlaKind.ESCALATED) in kinds
    assert state.triage.escalation_tier == 1 and state.triage.queue.endswith("#lead")
    assert any(a["labels"]["alertname"] == "TicketSlaBreach" for a in fx.alerts)
    assert any(key.endswith("|resolution|breach") for key in fx.counted)
    fx = PROCESS.on_lifecycle(state, event("ticket.escalated", 50, agent="S1"), now(50))
    assert state.triage.escalation_tier == 2 and state.triage.team is Team.COMPLAINT_DESK
    for hours in (51, 52):
        PROCESS.on_lifecycle(state, event("ticket.escalated", hours), now(hours))
    assert state.triage.escalation_tier == PROCESS.sla.policy.escalation_max_tier == 3
    assert state.triage.team is Team.MANAGEMENT


def test_an_incident_link_raises_to_l2_even_before_the_triage():
    state = TicketState.new("P-1")
    PROCESS.on_link(state, "INC:广州|technical:1", now(0))
    fx = PROCESS.on_triage(state, triaged(), now(0))
    assert state.triage.grade is Grade.L2 and state.triage.incident_id == "INC:广州|technical:1"
    assert [r.cause for r in fx.revisions] == ["incident"]
    again = PROCESS.on_link(state, "INC:广州|technical:1", now(1))  # read again after a crash
    assert not again.changed and again.revisions == [] and again.view == fx.view  # its state goes out again


def test_a_closed_ticket_leaves_the_open_gauge_and_reports_its_team():
    state = TicketState.new("P-1")
    PROCESS.on_triage(state, triaged(), now(0))
    assert state.open_bucket == ("network_ops", "L3")
    fx = PROCESS.on_lifecycle(state, event("ticket.closed", 1), now(1))
    assert state.open_bucket is None and fx.gauges[2] is None and fx.closed_team == "network_ops"


def test_state_round_trips_and_a_previous_release_value_still_loads():
    state = TicketState.new("P-1")
    PROCESS.on_triage(state, triaged(), now(0))
    PROCESS.on_lifecycle(state, event("ticket.responded", 1), now(1))
    value = json.loads(json.dumps(state.to_value()))
    assert value["v"] == STATE_VERSION
    again = TicketState.from_value("P-1", value)
    assert again.to_value() == state.to_value()
    old = json.loads((Path(__file__).parent / "data" / "ticket_state_v1.json").read_text(encoding="utf-8"))
    assert "v" not in old  # written by the release before TicketState
    loaded = TicketState.from_value("V1-1", old)
    assert loaded.triage.ticket_id == "V1-1" and loaded.open_bucket == tuple(old["open"])
    assert loaded.sla.fired == set(old["sla"]["x"]) and loaded.next_due == old["next"]
    fx = PROCESS.on_tick(loaded, old["next"] + 1)
    assert fx.sla_events and fx.changed and loaded.to_value()["v"] == STATE_VERSION
    with pytest.raises(StateVersionError, match="state version 9 is newer"):
        TicketState.from_value("X", {"v": 9})


LIFECYCLE = [
    "ticket.responded",
    "ticket.assigned",
    "ticket.investigation_started",
    "ticket.waiting_customer",
    "ticket.customer_replied",
    "ticket.regraded",
    "ticket.reclassified",
    "ticket.resolved",
    "ticket.feedback_sent",
    "ticket.survey_completed",
    "ticket.closed",
    "ticket.reopened",
    "ticket.escalated",
]
DATA = {
    "ticket.assigned": {"team": "billing"},
    "ticket.regraded": {"grade": "L1"},
    "ticket.reclassified": {"category": "business.handling"},
    "ticket.survey_completed": {"score": 4},
}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(LIFECYCLE), st.floats(0, 200)), max_size=12),
    st.floats(0, 5),
    st.lists(st.floats(0, 300), max_size=6),
)
def test_any_sequence_keeps_ids_unique_and_never_fires_before_its_cause(steps, triage_delay, ticks):
    """Whatever arrives in whatever order: every SLA id is emitted once, a retroactive event never
    fires before the change that caused it, and the state survives a save/load at every step."""
    state = TicketState.new("P-1")
    inputs = (
        [(triage_delay, "triage", None)]
        + [(h, "event", (k, i)) for i, (k, h) in enumerate(steps)]
        + [(h, "tick", None) for h in ticks]
    )
    emitted: dict[str, object] = {}
    clock = 0.0
    for hours, what, payload in sorted(inputs, key=lambda x: x[0]):
        clock = max(clock, hours)
        state = TicketState.from_value("P-1", json.loads(json.dumps(state.to_value())))
        if what == "triage":
            fx = PROCESS.on_triage(state, triaged(), now(clock))
        elif what == "tick":
            fx = PROCESS.on_tick(state, now(clock))
        else:
            kind, i = payload
            fx = PROCESS.on_lifecycle(
                state,
                Event.model_validate(
                    lifecycle(kind, "P-1", occurred_at=at(hours), event_id=f"P-1:{kind}:{i}", **DATA.get(kind, {}))
                ),
                now(clock),
            )
        for e in fx.sla_events:
            assert e.id not in emitted, e.id
            emitted[e.id] = e
            if e.retroactive:
                assert e.fired_at.timestamp() == pytest.approx(now(clock))
            assert e.team is not None
        if state.next_due is not None and state.triage is not None:
            assert state.next_due == PROCESS.sla.next_due(state.sla)


def test_a_complaint_is_triaged_against_its_customers_history():
    """`on_complaint` is what the ticket agent and `replay` run for a new complaint: the
    customer's earlier complaints count as repeats, and the entry it returns is what the caller
    remembers (and a worker sends to the others) once the step has succeeded."""
    from ticketstream.triage.history import CustomerHistories

    histories = CustomerHistories(TRIAGE.repeat_window_days)
    text = "家里网速有点慢，看视频卡"
    for i, days in enumerate((20, 10)):
        earlier = Event.model_validate(
            received(f"E-{i}", occurred_at=(T0 - timedelta(days=days)).isoformat(), content=text)
        )
        _, _, entry = PROCESS.on_complaint(TicketState.new(f"E-{i}"), earlier, histories.of("C-1"), now(0))
        histories.remember("C-1", entry)
    state = TicketState.new("P-1")
    complaint = Event.model_validate(received("P-1", occurred_at=T0.isoformat(), content=text))
    fx, record, entry = PROCESS.on_complaint(state, complaint, histories.of("C-1"), now(0))
    assert record.repeat_count == 2 and state.triage == record and fx.view is not None
    assert entry == ("P-1", record.category.value, epoch(T0)) and len(histories.of("C-1")) == 2  # not stored
    histories.remember("C-1", entry)
    again, same, _ = PROCESS.on_complaint(state, complaint, histories.of("C-1"), now(1))  # read again after a crash
    assert same == record and not again.changed  # its own entry does not count: the same ticket
    # nothing changed, but the ticket's state goes out again: its record may have been lost
    assert again.view == fx.view and again.revisions == [] and again.sla_events == []
