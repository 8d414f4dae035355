"""Calendar and SLA clock math (DOMAIN §5), firing rules, and properties of deadlines."""

from datetime import date, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ticketstream.policyfile import PolicyError
from ticketstream.schemas.events import Grade
from ticketstream.sla.calendar import CalendarOverrides, Unit, WorkCalendar, YearSchedule
from ticketstream.sla.deadlines import DeadlineIndex
from ticketstream.sla.engine import SlaEngine, TicketSla, epoch
from ticketstream.sla.policy import load_policy

CAL = WorkCalendar()
POLICY = load_policy()
ENGINE = SlaEngine(POLICY, CAL)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def e(text: str) -> float:
    return epoch(t(text))


# -- calendar --------------------------------------------------------------------------------
def test_national_day_example_seven_working_days():
    start = t("2026-09-30T10:00:00+08:00")
    due = CAL.advance(Unit.WORKING_DAYS, CAL.counting_start(Unit.WORKING_DAYS, start), 7 * 86_400)
    assert due == t("2026-10-16T00:00:00+08:00")


def test_make_up_working_day_on_a_saturday_counts():
    assert CAL.is_working_day(date(2026, 10, 10))  # Saturday, 調休
    assert not CAL.is_working_day(date(2026, 10, 7))
    assert not CAL.is_working_day(date(2026, 10, 11))  # an ordinary Sunday


def test_working_hours_across_a_weekend():
    due = CAL.advance(Unit.WORKING_HOURS, t("2026-11-06T17:00:00+08:00"), 4 * 3600)
    assert due == t("2026-11-09T12:00:00+08:00")


def test_working_hours_start_outside_business_hours_waits_for_opening():
    assert CAL.advance(Unit.WORKING_HOURS, t("2026-11-09T20:00:00+08:00"), 3600) == t("2026-11-10T10:00:00+08:00")


def test_inputs_in_any_utc_offset():
    utc = t("2026-09-30T02:00:00+00:00")  # the same instant as 10:00 +08:00
    due = CAL.advance(Unit.WORKING_DAYS, CAL.counting_start(Unit.WORKING_DAYS, utc), 7 * 86_400)
    assert due == t("2026-10-16T00:00:00+08:00")


def test_a_year_without_data_is_loud_and_falls_back_to_monday_friday(caplog):
    seen: list[int] = []
    cal = WorkCalendar(on_fallback=seen.append)
    assert cal.is_working_day(date(2031, 3, 3)) and not cal.is_working_day(date(2031, 3, 2))
    assert seen == [2031, 2031]
    assert "2031" in caplog.text


def test_operator_overrides_add_a_year_and_force_days():
    cal = WorkCalendar(
        CalendarOverrides(
            years={2031: YearSchedule(holidays=[date(2031, 1, 1)], workdays=[date(2031, 1, 4)])},
            days={date(2026, 11, 24): "holiday"},
        ),
        on_fallback=lambda y: pytest.fail(f"fallback for {y}"),
    )
    assert not cal.is_working_day(date(2031, 1, 1)) and cal.is_working_day(date(2031, 1, 4))
    assert not cal.is_working_day(date(2026, 11, 24))


def test_measure_is_the_inverse_of_advance():
    start = t("2026-11-06T17:00:00+08:00")
    due = CAL.advance(Unit.WORKING_HOURS, start, 4 * 3600)
    assert CAL.measure(Unit.WORKING_HOURS, start, due) == 4 * 3600


# -- stage timings ---------------------------------------------------------------------------
def state_with(grade=Grade.L3, received="2026-11-23T10:00:00+08:00", facts=()):
    s = TicketSla("T")
    s.received_at, s.grade = e(received), grade
    for i, (kind, at) in enumerate(facts):
        s.add_fact(kind, e(at), f"e{i}")
    return s


def timing(state, stage, cycle=1):
    return next(x for x in ENGINE.timings(state) if x.stage == stage and x.cycle == cycle)


def test_default_targets_per_grade():
    for grade, response_h, resolution_h in [
        (Grade.L1, 2, 24),
        (Grade.L2, 2, 12),
        (Grade.L3, 24, 48),
        (Grade.L4, 48, 72),
    ]:
        s = state_with(grade)
        assert timing(s, "response").due_at == e("2026-11-23T10:00:00+08:00") + response_h * 3600
        assert timing(s, "resolution").due_at == e("2026-11-23T10:00:00+08:00") + resolution_h * 3600


def test_investigation_opens_for_l1_l2_or_when_started():
    assert "investigation" not in {x.stage for x in ENGINE.timings(state_with(Grade.L3))}
    assert timing(state_with(Grade.L2), "investigation").start == e("2026-11-23T10:00:00+08:00")
    started = state_with(Grade.L3, facts=[("ticket.investigation_started", "2026-11-24T10:00:00+08:00")])
    inv = timing(started, "investigation")
    assert inv.start == e("2026-11-23T10:00:00+08:00")  # still from the time received
    assert inv.due_at == e("2026-12-03T00:00:00+08:00")  # 7 working days after Mon 11-23


def test_pause_moves_the_deadline_by_its_counting_time():
    paused = state_with(
        facts=[
            ("ticket.waiting_customer", "2026-11-23T12:00:00+08:00"),
            ("ticket.customer_replied", "2026-11-23T15:00:00+08:00"),
        ]
    )
    assert timing(paused, "response").due_at == e("2026-11-24T13:00:00+08:00")


def test_pause_spanning_a_holiday_only_moves_by_working_time():
    # Survey (3 working days) of a ticket resolved Tue 2026-09-29; a pause from 09-30 12:00 to
    # 10-08 12:00 spans the National Day holiday: only the counted half of 09-30 and of 10-08 move it.
    s = state_with(
        received="2026-09-28T10:00:00+08:00",
        facts=[
            ("ticket.resolved", "2026-09-29T10:00:00+08:00"),
            ("ticket.waiting_customer", "2026-09-30T12:00:00+08:00"),
            ("ticket.customer_replied", "2026-10-08T12:00:00+08:00"),
        ],
    )
    # Unpaused: counting 09-30, 10-08, 10-09 -> due 10-10 00:00. The pause holds 12 h of 09-30 and
    # 12 h of 10-08 (the holiday between does not count): one working day later, and Saturday
    # 10-10 is a make-up working day -> due 10-11 00:00.
    assert timing(s, "survey").due_at == e("2026-10-11T00:00:00+08:00")


def test_open_pause_means_nothing_is_due():
    s = state_with(facts=[("ticket.waiting_customer", "2026-11-23T12:00:00+08:00")])
    assert timing(s, "response").due_at is None
    assert ENGINE.advance(s, e("2026-12-30T00:00:00+08:00")) == []


def test_reopen_starts_a_new_cycle_and_cancels_the_open_survey():
    s = state_with(
        facts=[
            ("ticket.responded", "2026-11-23T11:00:00+08:00"),
            ("ticket.resolved", "2026-11-24T10:00:00+08:00"),
            ("ticket.feedback_sent", "2026-11-24T12:00:00+08:00"),
            ("ticket.reopened", "2026-11-25T10:00:00+08:00"),
        ]
    )
    survey1 = timing(s, "survey", 1)
    assert survey1.cancelled_at == e("2026-11-25T10:00:00+08:00")
    res2 = timing(s, "resolution", 2)
    assert res2.start == e("2026-11-25T10:00:00+08:00") and res2.met_at is None
    assert not [x for x in ENGINE.timings(s) if x.stage == "survey" and x.cycle == 2]  # not resolved again yet
    events = ENGINE.advance(s, e("2026-12-10T00:00:00+08:00"))
    assert not any(ev.stage == "survey" and ev.cycle == 1 and ev.kind == "breach" for ev in events)
    assert any(ev.id == "T:2:resolution:breach:100" for ev in events)
    assert not any(ev.stage == "response" and ev.cycle == 2 for ev in events)


def test_closed_ends_the_cycle_and_meets_the_survey():
    s = state_with(
        facts=[("ticket.resolved", "2026-11-23T12:00:00+08:00"), ("ticket.closed", "2026-11-23T13:00:00+08:00")]
    )
    assert timing(s, "survey").met_at == e("2026-11-23T13:00:00+08:00")
    assert timing(s, "result_feedback").cancelled_at == e("2026-11-23T13:00:00+08:00")
    assert timing(s, "response").cancelled_at == e("2026-11-23T13:00:00+08:00")


# -- firing ----------------------------------------------------------------------------------
def test_warnings_and_breach_fire_in_order_with_deterministic_ids():
    s = TicketSla("T")
    out = ENGINE.received(s, e("2026-11-23T10:00:00+08:00"), Grade.L2, now=e("2026-11-23T10:00:00+08:00"))
    assert out == []
    fired = ENGINE.advance(s, e("2026-11-23T12:00:00+08:00"))
    assert [ev.id for ev in fired] == [
        "T:1:response:warning:50",
        "T:1:response:warning:75",
        "T:1:response:warning:90",
        "T:1:response:breach:100",
    ]
    assert fired[-1].fired_at == t("2026-11-23T12:00:00+08:00") and not fired[-1].retroactive
    assert ENGINE.advance(s, e("2026-11-23T12:00:00+08:00")) == []  # each id once


def test_met_event_carries_the_time_of_the_event_and_stops_later_thresholds():
    s = TicketSla("T")
    ENGINE.received(s, e("2026-11-23T10:00:00+08:00"), Grade.L3, now=e("2026-11-23T10:00:00+08:00"))
    out = ENGINE.fact(s, "ticket.responded", e("2026-11-23T11:00:00+08:00"), "r1", now=e("2026-11-23T11:00:00+08:00"))
    assert [(ev.id, ev.fired_at) for ev in out] == [("T:1:response:met", t("2026-11-23T11:00:00+08:00"))]
    assert not any(ev.stage == "response" for ev in ENGINE.advance(s, e("2026-12-30T00:00:00+08:00")))


def test_met_at_the_very_instant_of_a_threshold_is_met_not_breached():
    s = TicketSla("T")
    ENGINE.received(s, e("2026-11-23T10:00:00+08:00"), Grade.L2, now=e("2026-11-23T10:00:00+08:00"))
    out = ENGINE.fact(s, "ticket.responded", e("2026-11-23T12:00:00+08:00"), "r", now=e("2026-11-23T12:00:00+08:00"))
    kinds = [(ev.stage, ev.kind, ev.percent) for ev in out]
    assert ("response", "breach", 100) not in kinds and ("response", "met", None) in kinds
    assert ("response", "warning", 90) in kinds


def test_a_met_event_that_arrives_before_its_stage_opens_still_counts():
    s = TicketSla("T")
    ENGINE.fact(s, "ticket.feedback_sent", e("2026-11-24T12:00:00+08:00"), "f", now=e("2026-11-24T12:00:00+08:00"))
    ENGINE.received(s, e("2026-11-23T10:00:00+08:00"), Grade.L3, now=e("2026-11-24T12:00:00+08:00"))
    out = ENGINE.fact(s, "ticket.resolved", e("2026-11-24T10:00:00+08:00"), "r", now=e("2026-11-24T12:00:00+08:00"))
    assert "T:1:result_feedback:met" in [ev.id for ev in out]
    assert not any(
        ev.stage == "result_feedback" and ev.kind != "met" for ev in ENGINE.advance(s, e("2026-12-01T00:00:00+08:00"))
    )


def test_retroactive_regrade_fires_only_the_most_severe_threshold():
    s = TicketSla("T")
    now = e("2026-11-23T10:00:00+08:00")
    ENGINE.received(s, now, Grade.L3, now=now)
    now = e("2026-11-23T13:30:00+08:00")
    assert ENGINE.advance(s, now) == []  # L3 response is 24 h: nothing yet
    out = ENGINE.regrade(s, Grade.L1, now=now)  # L1 response 2 h: deadline 12:00 passed
    response = [ev for ev in out if ev.stage == "response"]
    assert [(ev.kind, ev.percent, ev.retroactive) for ev in response] == [("breach", 100, True)]
    # DOMAIN §5: it fires at once, when the regrade is processed, never before the event that
    # caused it; its due time says when the deadline was.
    assert response[0].fired_at == t("2026-11-23T13:30:00+08:00")
    assert response[0].due_at == t("2026-11-23T12:00:00+08:00")
    inv = [ev for ev in out if ev.stage == "investigation"]
    assert inv == []  # opened by the regrade, but nothing of it is due yet
    assert "investigation" in {x.stage for x in ENGINE.timings(s)}
    # The suppressed warnings never fire later.
    later = ENGINE.advance(s, e("2026-11-23T14:00:00+08:00"))
    assert not any(ev.stage == "response" for ev in later)


def test_a_late_received_event_fires_the_breach_alone():
    s = TicketSla("T")
    out = ENGINE.received(s, e("2026-11-20T10:00:00+08:00"), Grade.L2, now=e("2026-11-23T10:00:00+08:00"))
    response = [ev for ev in out if ev.stage == "response"]
    assert [(ev.kind, ev.retroactive) for ev in response] == [("breach", True)]
    escalations = [ev for ev in out if ev.kind == "escalated"]
    assert [(ev.percent, ev.from_tier, ev.to_tier) for ev in escalations] == [(200, 2, 3)]


def test_escalation_ladder_on_resolution():
    s = TicketSla("T")
    ENGINE.received(s, e("2026-11-23T10:00:00+08:00"), Grade.L2, now=e("2026-11-23T10:00:00+08:00"))
    out = ENGINE.advance(s, e("2026-11-25T10:00:00+08:00"))
    esc = [(ev.percent, ev.from_tier, ev.to_tier, ev.fired_at) for ev in out if ev.kind == "escalated"]
    assert esc == [
        (100, 0, 1, t("2026-11-23T22:00:00+08:00")),
        (150, 1, 2, t("2026-11-24T04:00:00+08:00")),
        (200, 2, 3, t("2026-11-24T10:00:00+08:00")),
    ]


def test_duplicates_and_disorder_give_the_same_events():
    facts = [
        ("ticket.responded", "2026-11-23T11:00:00+08:00", "a"),
        ("ticket.resolved", "2026-11-25T10:00:00+08:00", "b"),
        ("ticket.feedback_sent", "2026-11-25T11:00:00+08:00", "c"),
        ("ticket.closed", "2026-11-26T10:00:00+08:00", "d"),
    ]
    end = e("2026-12-31T00:00:00+08:00")

    def run(order):
        s = TicketSla("T")
        ENGINE.received(s, e("2026-11-23T10:00:00+08:00"), Grade.L3, now=e("2026-11-23T10:00:00+08:00"))
        out = []
        for kind, at, eid in order:
            out += ENGINE.fact(s, kind, e(at), eid, now=e("2026-11-23T10:00:01+08:00"))
        out += ENGINE.advance(s, end)
        return sorted(ev.id for ev in out)

    assert run(facts) == run(list(reversed(facts))) == run(facts + facts)


def test_policy_validation_names_the_problem(tmp_path):
    bad = tmp_path / "p.toml"
    bad.write_text(
        'warnings = [50, 120]\n[stages.x]\nunit = "natural_hours"\nstarts = "received"\n'
        'met_by = ["ticket.responded"]\ntargets = { L1 = 1, L2 = 1, L3 = 1 }\n'
    )
    with pytest.raises(PolicyError) as err:
        load_policy(bad)
    assert "warnings" in str(err.value) and "L4" in str(err.value)


def test_deadline_index_pops_only_due_and_current_entries():
    index = DeadlineIndex()
    index.schedule("a", 10.0)
    index.schedule("b", 5.0)
    index.schedule("a", 3.0)  # moved earlier; the 10.0 entry is stale
    assert index.peek() == 3.0
    assert index.pop_due(4.0) == ["a"]
    assert index.pop_due(20.0) == ["b"]
    assert index.pop_due(100.0) == [] and len(index) == 0


# -- properties ------------------------------------------------------------------------------
@given(
    st.lists(st.tuples(st.sampled_from("abcdefgh"), st.none() | st.floats(min_value=0, max_value=100))),
    st.floats(min_value=0, max_value=120),
)
def test_a_loaded_index_pops_what_the_scheduled_one_pops(entries, now):
    """The rebuild after a rebalance (load) and live scheduling agree on what is due."""
    scheduled, loaded = DeadlineIndex(), DeadlineIndex()
    for ticket_id, at in entries:
        scheduled.schedule(ticket_id, at)
    latest = dict(entries)
    loaded.load(latest.items())
    assert len(loaded) == len(scheduled)
    assert loaded.peek() == scheduled.peek()
    assert sorted(loaded.pop_due(now)) == sorted(scheduled.pop_due(now))
    assert len(loaded) == len(scheduled)


@given(
    st.dictionaries(st.sampled_from("abcdefgh"), st.floats(min_value=0, max_value=100)),
    st.lists(st.tuples(st.sampled_from("abcdefghij"), st.none() | st.floats(min_value=0, max_value=100))),
    st.floats(min_value=0, max_value=120),
)
def test_schedules_made_during_a_rebuild_win_over_the_table_it_read(table, meanwhile, now):
    """The rebuild yields while it reads the table; what the agent schedules meanwhile is newer
    than what the rebuild read, so the loaded index must agree with scheduling it afterwards."""
    rebuilt, expected = DeadlineIndex(), DeadlineIndex()
    rebuilt.schedule("z", 1.0)  # the old index: replaced by the rebuild
    rebuilt.begin_load()
    for ticket_id, at in meanwhile:
        rebuilt.schedule(ticket_id, at)
    rebuilt.load(dict(table))
    for ticket_id, at in [*table.items(), *meanwhile]:
        expected.schedule(ticket_id, at)
    assert len(rebuilt) == len(expected)
    assert rebuilt.peek() == expected.peek()
    assert sorted(rebuilt.pop_due(now)) == sorted(expected.pop_due(now))
    rebuilt.schedule("k", 500.0)  # the load is over: schedules are no longer remembered for it
    rebuilt.load({})
    assert len(rebuilt) == 0


instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 20)).map(
    lambda d: epoch(d.replace(tzinfo=CAL.tz))
)
units = st.sampled_from(list(Unit))


@given(
    units,
    instants,
    st.floats(min_value=0.1, max_value=200),
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=100),
)
def test_a_pause_never_makes_a_deadline_earlier(unit, start, hours, pause_at_h, pause_len_h):
    seconds = hours * 3600
    plain = ENGINE.deadline(unit, start, seconds, [])
    p0 = start + pause_at_h * 3600
    paused = ENGINE.deadline(unit, start, seconds, [(p0, p0 + pause_len_h * 3600)])
    assert paused >= plain - 1e-6


@given(units, instants, st.floats(min_value=0.1, max_value=200), st.floats(min_value=0, max_value=50))
def test_a_longer_target_never_makes_a_deadline_earlier(unit, start, hours, more):
    assert (
        ENGINE.deadline(unit, start, (hours + more) * 3600, []) >= ENGINE.deadline(unit, start, hours * 3600, []) - 1e-6
    )


@given(instants, st.floats(min_value=0, max_value=72))
def test_natural_hours_are_plain_arithmetic(start, hours):
    assert ENGINE.deadline(Unit.NATURAL_HOURS, start, hours * 3600, []) == pytest.approx(start + hours * 3600)


@given(units, instants, st.lists(st.floats(min_value=0, max_value=400 * 3600), min_size=1, max_size=8))
def test_one_walk_of_the_calendar_gives_each_advance_exactly(unit, start, seconds):
    cursor = CAL.counting_start(unit, datetime.fromtimestamp(start, CAL.tz))
    assert CAL.advance_each(unit, cursor, seconds) == [CAL.advance(unit, cursor, s) for s in seconds]


@given(
    st.floats(min_value=1.6e9, max_value=1.9e9, allow_nan=False),
    st.floats(min_value=0.0, max_value=1e7, allow_nan=False),
    st.booleans(),
)
def test_natural_hours_thresholds_by_arithmetic_are_the_calendars_to_the_microsecond(start, target, escalates):
    """Any float start (not only whole microseconds) and target: the arithmetic of the natural-hours
    path rounds as `datetime.fromtimestamp` and `timedelta` do."""
    cursor = CAL.counting_start(Unit.NATURAL_HOURS, datetime.fromtimestamp(start, CAL.tz))
    shares = [target * p / 100 for p in ENGINE._percents[escalates]]
    walked = tuple(at.timestamp() for at in CAL.advance_each(Unit.NATURAL_HOURS, cursor, shares))
    assert ENGINE._threshold_instants(Unit.NATURAL_HOURS, start, target, escalates, ()) == walked


BERLIN = SlaEngine(POLICY, WorkCalendar(CalendarOverrides(timezone="Europe/Berlin")))


def test_only_a_zone_without_daylight_saving_has_a_steady_offset():
    assert CAL.steady_offset is not None and BERLIN.calendar.steady_offset is None


@given(
    st.datetimes(min_value=datetime(2025, 3, 20), max_value=datetime(2025, 11, 1)).map(
        lambda d: d.replace(tzinfo=BERLIN.calendar.tz).timestamp()
    ),
    st.floats(min_value=0.1, max_value=200),
    st.booleans(),
)
def test_natural_hours_across_daylight_saving_count_as_the_calendar_does(start, hours, escalates):
    """In a zone with daylight saving (an operator's `timezone`), natural hours are counted on the
    local wall clock by the calendar; the arithmetic shortcut must not count them otherwise."""
    target = hours * 3600
    expected = tuple(
        BERLIN.deadline(Unit.NATURAL_HOURS, start, target * p / 100, []) for p in BERLIN._percents[escalates]
    )
    assert BERLIN._threshold_instants(Unit.NATURAL_HOURS, start, target, escalates, ()) == expected


def test_facts_of_a_stored_state_are_put_back_in_time_order():
    stored = TicketSla("T-1", 100.0, Grade.L3, [(300.0, "ticket.resolved", "b"), (200.0, "ticket.responded", "a")])
    loaded = TicketSla.from_dict(stored.to_dict())
    assert [at for at, _, _ in loaded.facts] == [200.0, 300.0]
    assert ENGINE.timings(loaded) == ENGINE.timings(TicketSla.from_dict(loaded.to_dict()))
    response = next(t for t in ENGINE.timings(loaded) if t.stage == "response")
    assert response.met_at == 200.0


@given(units, instants, st.floats(min_value=0.1, max_value=200), st.booleans())
def test_a_stages_threshold_instants_are_the_deadlines_of_its_marks(unit, start, hours, escalates):
    """The one-walk path (no pause) gives exactly what `deadline` gives each mark on its own."""
    target = hours * 3600
    expected = tuple(ENGINE.deadline(unit, start, target * p / 100, []) for p in ENGINE._percents[escalates])
    assert ENGINE._threshold_instants(unit, start, target, escalates, ()) == expected


def _deadline_of_one_mark(unit, start, seconds, pauses):
    """The reference: one mark on its own, a walk of the calendar per pause (the engine's code
    before a stage's marks shared their walks)."""
    cursor = CAL.counting_start(unit, datetime.fromtimestamp(start, CAL.tz))
    remaining = seconds
    for p_start, p_end in pauses:
        if p_end is not None and p_end <= cursor.timestamp():
            continue
        candidate = CAL.advance(unit, cursor, remaining)
        if p_start >= candidate.timestamp():
            break
        remaining -= CAL.measure(unit, cursor, max(datetime.fromtimestamp(p_start, CAL.tz), cursor))
        if p_end is None:
            return None
        cursor = max(cursor, datetime.fromtimestamp(p_end, CAL.tz))
    return CAL.advance(unit, cursor, remaining).timestamp()


@st.composite
def pause_lists(draw, start):
    """Pauses in time order from about `start` on, the last possibly open; some before it."""
    at, out = start - draw(st.floats(min_value=0, max_value=48 * 3600)), []
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        at += draw(st.floats(min_value=0, max_value=60 * 3600))
        length = draw(st.floats(min_value=0, max_value=80 * 3600))
        out.append((at, at + length))
        at += length
    if out and draw(st.booleans()):
        out[-1] = (out[-1][0], None)
    return out


@given(units, instants.flatmap(lambda start: st.tuples(st.just(start), pause_lists(start))), st.floats(0.1, 200))
@example(Unit.WORKING_HOURS, (1767225600.0, [(1767225600.0, None)]), 8.0)  # paused at once, still paused
@example(Unit.NATURAL_HOURS, (1767225600.0, [(1767240000.0, 1767247200.0)]), 8.0)  # a pause from the 50 % mark on
def test_a_stages_marks_share_their_walks_and_get_each_marks_own_deadline(unit, start_pauses, hours):
    start, pauses = start_pauses
    shares = [hours * 3600 * p / 100 for p in ENGINE._percents[True]]
    assert ENGINE.deadlines(unit, start, shares, pauses) == [
        _deadline_of_one_mark(unit, start, s, pauses) for s in shares
    ]
    assert ENGINE._threshold_instants(unit, start, hours * 3600, True, tuple(pauses)) == tuple(
        _deadline_of_one_mark(unit, start, s, pauses) for s in shares
    )


@given(instants.flatmap(lambda start: st.tuples(st.just(start), pause_lists(start))), st.floats(0.1, 200))
@example((1767196800.0, []), 7.0)  # 00:00 of 2026-01-01 in Shanghai: the day's own start
def test_working_days_marks_depend_only_on_the_day_they_start(start_pauses, days):
    """Every instant of a local day counts from the next midnight, so the engine shares one set of
    working-days marks per day (`day_start`): they are each mark's own deadline from the instant."""
    start, pauses = start_pauses
    day = CAL.day_start(start)
    assert day <= start < day + 25 * 3600
    assert CAL.counting_start(Unit.WORKING_DAYS, datetime.fromtimestamp(day, CAL.tz)) == CAL.counting_start(
        Unit.WORKING_DAYS, datetime.fromtimestamp(start, CAL.tz)
    )
    target = days * 86_400
    shares = [target * p / 100 for p in ENGINE._percents[True]]
    assert ENGINE._threshold_instants(Unit.WORKING_DAYS, day, target, True, tuple(pauses)) == tuple(
        _deadline_of_one_mark(Unit.WORKING_DAYS, start, s, pauses) for s in shares
    )


histories = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "ticket.responded",
                "ticket.resolved",
                "ticket.feedback_sent",
                "ticket.waiting_customer",
                "ticket.customer_replied",
                "ticket.reopened",
                "ticket.survey_completed",
                "ticket.closed",
                "ticket.investigation_started",
                "ticket.investigation_completed",
            ]
        ),
        st.integers(0, 200),
    ),
    max_size=8,
)
"""A ticket's lifecycle: event types at hours after its receipt."""


@given(histories, st.sampled_from(list(Grade)), st.integers(0, 400))
def test_any_event_history_fires_each_id_at_most_once(facts, grade, end_h):
    s = TicketSla("T")
    base = e("2026-11-02T09:00:00+08:00")
    ids = []
    ids += [ev.id for ev in ENGINE.received(s, base, grade, now=base)]
    for i, (kind, h) in enumerate(facts):
        ids += [ev.id for ev in ENGINE.fact(s, kind, base + h * 3600, f"e{i}", now=base + h * 3600)]
    ids += [ev.id for ev in ENGINE.advance(s, base + end_h * 3600)]
    ids += [ev.id for ev in ENGINE.advance(s, base + end_h * 3600)]
    assert len(ids) == len(set(ids))
    restored = TicketSla.from_dict(s.to_dict())
    assert restored == s


@given(histories, st.sampled_from(list(Grade)), st.integers(0, 400))
@example([("ticket.resolved", 105)], Grade.L1, 0)  # investigation pending (189 h), result feedback earlier (117 h)
def test_next_due_is_the_earliest_pending_mark_of_any_stage(facts, grade, end_h):
    """`next_due` names only marks that could be the earliest; it must still be the minimum over
    every mark neither fired, suppressed nor stopped (the deadline index relies on it)."""
    s = TicketSla("T")
    base = e("2026-11-02T09:00:00+08:00")
    ENGINE.received(s, base, grade, now=base)
    for i, (kind, h) in enumerate(facts):
        ENGINE.fact(s, kind, base + h * 3600, f"e{i}", now=base + h * 3600)
    ENGINE.advance(s, base + end_h * 3600)
    done = s.fired | s.suppressed
    pending = [
        th.at
        for st_ in ENGINE.timings(s)
        for th in st_.thresholds
        if th.at is not None and st_.key(th.kind, th.percent) not in done and not st_.stops_before(th.at)
    ]
    assert ENGINE.next_due(s) == (min(pending) if pending else None)


def test_state_round_trips_through_its_table_form():
    s = state_with(facts=[("ticket.responded", "2026-11-23T11:00:00+08:00")])
    s.fired.add("1:response:met")
    assert TicketSla.from_dict(s.to_dict()) == s


def test_at_risk_stages_are_past_75_percent_and_neither_met_nor_breached():
    s = TicketSla("T")
    ENGINE.received(s, e("2026-11-23T10:00:00+08:00"), Grade.L2, now=e("2026-11-23T10:00:00+08:00"))
    ENGINE.advance(s, e("2026-11-23T11:40:00+08:00"))  # response 2 h: 50 % and 75 % passed
    assert s.at_risk_stages(75) == ["response"]
    ENGINE.advance(s, e("2026-11-23T12:00:00+08:00"))  # breached: no longer "at risk"
    assert "response" not in s.at_risk_stages(75)


def test_calendar_coverage_ends_where_the_data_ends():
    from datetime import date

    from ticketstream.sla.calendar import CalendarOverrides, YearSchedule, package_years

    last = max(package_years())
    shipped = WorkCalendar()
    assert shipped.covered_until(date(last, 6, 1)) == date(last, 12, 31)
    assert shipped.covered_until(date(last + 1, 1, 5)) == date(last, 12, 31)  # this year has no data
    extended = WorkCalendar(
        CalendarOverrides(years={last + 1: YearSchedule(holidays=[date(last + 1, 1, 1)]), last + 2: YearSchedule()})
    )
    assert extended.covered_until(date(last, 6, 1)) == date(last + 2, 12, 31)
    assert extended.covered_years() >= {last, last + 1, last + 2}


def test_calendar_check_says_how_far_and_how_to_extend(tmp_path):
    import subprocess
    import sys
    from datetime import date

    from tests.harness import REPO

    year = date.today().year
    extended = tmp_path / "calendar.toml"
    extended.write_text(
        f"[years.{year}]\nholidays = [{year}-01-01]\n[years.{year + 1}]\nholidays = [{year + 1}-01-01]\n"
    )
    ok = subprocess.run(
        [sys.executable, "-m", "ticketstream.workers.cli", "calendar", "check", "--calendar", str(extended)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert f"covered until: {year + 1}-12-31" in ok.stdout
    shipped = subprocess.run(
        [sys.executable, "-m", "ticketstream.workers.cli", "calendar", "check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    until = WorkCalendar().covered_until(date.today())
    assert f"covered until: {until.isoformat()}" in shipped.stdout
    if (until - date.today()).days < 45:
        assert shipped.returncode == 1 and "[years." in shipped.stderr and "国务院" in shipped.stderr
    else:
        assert shipped.returncode == 0
