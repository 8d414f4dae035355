"""The incident detector's arithmetic: floors, baselines, warm-up, share of the city, one incident
per burst, linking, closing. (`tests/benchmarks/eval_incidents.py` measures it on hours of
simulated traffic.)"""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticketstream.incidents.detector import Detector, IncidentPolicy, KeyState

POLICY = IncidentPolicy(warmup_seconds=0)
"""The arithmetic alone: judged from the first complaint (the shipped policy warms up for an hour)."""
T0 = 1_800_000_000.0  # a step boundary


def feed(detector, state, times, prefix="T", category=None):
    outcomes = []
    for i, at in enumerate(times):
        outcomes.append(detector.complaint(state, f"{prefix}{i}", at, category))
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
    first_hour = [o for o, t in zip(outs, times, strict=False) if t < T0 + 3600]
    later = [o for o, t in zip(outs, times, strict=False) if t >= T0 + 3600]
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
    assert len(open_ids) <= 1 or s.categories["technical"].closed  # a second incident only after a close


@given(st.integers(min_value=0, max_value=19), st.integers(min_value=1, max_value=50))
def test_under_floor_never_opens(count, spread):
    d, s = Detector(POLICY), KeyState("西安|technical")
    assert not opened(feed(d, s, [T0 + i * spread / max(count, 1) for i in range(count)]))


def city_traffic(d, s, start, minutes, per_minute, shares, prefix="S"):
    """Steady traffic: `per_minute` complaints a minute spread over the categories by `shares`."""
    outcomes, n = [], 0
    for minute in range(minutes):
        for category, share in shares.items():
            for i in range(round(per_minute * share)):
                at = start + minute * 60 + (i + 0.5) * 60 / max(1, round(per_minute * share))
                outcomes.append(d.complaint(s, f"{prefix}{n}", at, category))
                n += 1
    return outcomes


SHARES = {"technical": 0.41, "business": 0.26, "service": 0.23, "other": 0.10}


def test_a_new_city_is_not_judged_before_its_warm_up_and_then_from_the_warm_up_mean():
    d, s = Detector(IncidentPolicy()), KeyState("廣州")
    # 15 a minute: 61 technical complaints per window, three times the floor, from the first minute.
    assert not opened(city_traffic(d, s, T0, 60, 15, SHARES))
    assert not opened(city_traffic(d, s, T0 + 3600, 60, 15, SHARES, prefix="U"))
    assert s.categories["technical"].baseline == pytest.approx(61.5, rel=0.1)


def test_cold_start_without_warm_up_judged_steady_traffic_by_the_floor_alone():
    # What the shipped policy used to do: the same steady traffic opens an incident at once.
    d, s = Detector(IncidentPolicy(warmup_seconds=0, min_share=0)), KeyState("廣州")
    assert opened(city_traffic(d, s, T0, 10, 15, SHARES))


def test_a_prior_judges_a_city_during_its_warm_up():
    policy = IncidentPolicy(priors={"廣州|technical": 60, "*|technical": 1000}, default_prior=50)
    d, s = Detector(policy), KeyState("廣州")
    assert d.judged_baseline(KeyState("深圳", first_step=0), "technical", 1) == 1000
    assert d.judged_baseline(KeyState("深圳", first_step=0), "service", 1) == 50
    assert not opened(city_traffic(d, s, T0, 10, 15, SHARES))
    burst = opened(feed(d, s, [T0 + 600 + i for i in range(400)], category="technical"))
    assert len(burst) == 1 and burst[0].baseline == 60


def test_more_traffic_of_every_kind_is_no_incident_but_one_kind_swamping_the_city_is():
    d, s = Detector(IncidentPolicy()), KeyState("北京")
    city_traffic(d, s, T0, 90, 10, SHARES)
    # Traffic of every kind goes up eightfold (a morning ramp-up): the share of each stays put.
    assert not opened(city_traffic(d, s, T0 + 90 * 60, 20, 80, SHARES, prefix="R"))
    d, s = Detector(IncidentPolicy()), KeyState("北京")
    city_traffic(d, s, T0, 90, 10, SHARES)
    later = [(T0 + 90 * 60 + i * 6, c) for i in range(200) for c in ("technical", "business", "service")]
    later += [(T0 + 90 * 60 + i * 2, "technical") for i in range(300)]  # 150 a minute more for 10 minutes
    outs = [d.complaint(s, f"R{i}", at, c) for i, (at, c) in enumerate(sorted(later))]
    assert [(r.city, r.category) for r in opened(outs)] == [("北京", "technical")]


def test_an_open_incident_does_not_raise_its_own_baseline():
    d, s = Detector(IncidentPolicy()), KeyState("深圳|technical")
    assert not opened(feed(d, s, [T0 + i * 30 for i in range(240)]))  # 20 per window for two hours
    outs = feed(d, s, [T0 + 7200 + i for i in range(600)], prefix="B")  # ten minutes of 60 a minute
    assert len(opened(outs)) == 1
    assert s.categories["technical"].baseline == pytest.approx(opened(outs)[0].baseline)


def test_a_state_decoded_from_a_stored_value_leaves_it_as_it_was():
    """The memory store hands back the stored value itself; the incident agent steps a city's
    batch on a decoded state and, if the detector fails on a message, decodes the stored value
    again: stepping must not have changed it (no message counted twice)."""
    stored = {
        "k": "廣州",
        "v": 2,
        "f": 1,
        "l": 2,
        "c": {
            "network": {
                "b": {"1": 3},
                "bl": 1.0,
                "n": 0,
                "r": [["T-1", 60.0]],
                "i": {"id": "INC:廣州|network:0", "count": 3, "latest_at": 60.0},
                "c": [],
            }
        },
        "i": True,
    }
    before = json.loads(json.dumps(stored))
    state = KeyState.from_dict(stored)
    category = state.categories["network"]
    assert category.incident is not None
    category.incident["count"] += 1
    category.incident["latest_at"] = 120.0
    category.recent.append(["T-2", 120.0])
    assert stored == before
