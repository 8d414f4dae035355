"""The incident detector's arithmetic: floors, baselines, one incident per burst, linking, closing."""

from hypothesis import given
from hypothesis import strategies as st

from ticketstream.incidents import Detector, IncidentPolicy, KeyState

POLICY = IncidentPolicy()
T0 = 1_800_000_000.0  # a step boundary


def feed(detector, state, times, prefix="T"):
    outcomes = []
    for i, at in enumerate(times):
        outcomes.append(detector.complaint(state, f"{prefix}{i}", at))
    return outcomes


def opened(outcomes):
    return [r for o in outcomes for r in o.records if r.action == "open"]


def test_no_incident_under_the_floor():
    d, s = Detector(POLICY), KeyState("廣州|technical")
    assert not opened(feed(d, s, [T0 + i for i in range(19)]))


def test_a_burst_over_floor_and_baseline_opens_exactly_one_incident_within_one_step():
    d, s = Detector(POLICY), KeyState("廣州|technical")
    outs = feed(d, s, [T0 + 3 * i for i in range(200)])  # 200 complaints in 10 minutes
    opens = opened(outs)
    assert len(opens) == 1
    assert opens[0].count == 20 and opens[0].opened_at - T0 < POLICY.step_seconds
    linked = {t for o in outs for t, _ in o.links}
    assert linked == {f"T{i}" for i in range(200)}  # the 19 before the opening too
    assert opens[0].id == f"INC:廣州|technical:{int(T0) - 540}"


def test_a_steady_high_baseline_opens_nothing():
    d, s = Detector(POLICY), KeyState("北京|business")
    # 40 complaints every 10 minutes for 3 hours: always over the floor, never 5x the baseline...
    times = [T0 + i * 15 for i in range(720)]
    outs = feed(d, s, times)
    first_hour = [o for o, t in zip(outs, times) if t < T0 + 3600]
    later = [o for o, t in zip(outs, times) if t >= T0 + 3600]
    assert not opened(later)
    assert len(opened(first_hour)) <= 1  # ...once the baseline has learnt the level


def test_closes_after_the_quiet_period_and_a_new_burst_is_a_new_incident():
    d, s = Detector(POLICY), KeyState("深圳|technical")
    outs = feed(d, s, [T0 + i for i in range(30)])
    first = opened(outs)[0]
    assert d.tick(s, T0 + 29 + POLICY.quiet_seconds - 1).records == []
    close = d.tick(s, T0 + 29 + POLICY.quiet_seconds).records
    assert [(r.action, r.id) for r in close] == [("close", first.id)]
    later = T0 + 100_000
    again = opened(feed(d, s, [later + i for i in range(200)], prefix="U"))
    assert len(again) == 1 and again[0].id != first.id


def test_state_round_trips():
    d, s = Detector(POLICY), KeyState("上海|service")
    feed(d, s, [T0 + i for i in range(25)])
    assert KeyState.from_dict(s.to_dict()) == s


@given(st.lists(st.floats(min_value=0, max_value=6 * 3600), max_size=300))
def test_never_more_than_one_open_incident_and_every_link_names_it(offsets):
    d, s = Detector(POLICY), KeyState("成都|technical")
    open_ids = set()
    for i, off in enumerate(sorted(offsets)):
        out = d.complaint(s, f"T{i}", T0 + off)
        for r in out.records:
            if r.action == "open":
                assert s.incident is not None
                open_ids.add(r.id)
        for _, incident_id in out.links:
            assert s.incident is not None and incident_id == s.incident["id"]
    assert len(open_ids) <= 1 or s.closed  # a second incident only after a close


@given(st.integers(min_value=0, max_value=19), st.integers(min_value=1, max_value=50))
def test_under_floor_never_opens(count, spread):
    d, s = Detector(POLICY), KeyState("西安|technical")
    assert not opened(feed(d, s, [T0 + i * spread / max(count, 1) for i in range(count)]))
