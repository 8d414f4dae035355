"""Team overload: what counts, and one alert per window when breaches reach the threshold."""

from ticketstream.oversight.overload import counted_as, overload, parse_key, table_key


def test_what_counts():
    assert counted_as("breach", 100, 75) == "breach"
    assert counted_as("warning", 90, 75) == "at_risk" and counted_as("warning", 75, 75) == "at_risk"
    assert counted_as("warning", 75, 90) is None  # the policy says where at risk begins
    assert (
        counted_as("warning", 50, 75) is None
        and counted_as("met", None, 75) is None
        and counted_as("escalated", 150, 75) is None
    )


def test_keys_round_trip_and_carry_no_ticket():
    key = table_key("network_ops", "L2", "response", "breach")
    assert parse_key(key) == ("network_ops", "L2", "response", "breach")


def test_alert_exactly_when_the_threshold_is_reached():
    assert overload("billing", "L3", "resolution", "5m", 1_800_000_000, 8, 9, 10) is None
    alert = overload("billing", "L3", "resolution", "5m", 1_800_000_000, 9, 10, 10)
    assert alert is not None and overload("billing", "L3", "resolution", "5m", 1_800_000_000, 10, 11, 10) is None
    jumped = overload("billing", "L3", "resolution", "5m", 1_800_000_000, 7, 13, 10)  # a batch of 6 crossed it
    assert jumped is not None and jumped.id == alert.id and jumped.breaches == 13
    assert overload("billing", "L3", "resolution", "5m", 1_800_000_000, 10, 16, 10) is None  # crossed before
    body = alert.as_alert()
    assert body["id"] == "team_overload:billing:L3:resolution:5m:1800000000"
    assert body["labels"]["alertname"] == "TeamOverload" and body["labels"]["team"] == "billing"
    assert body["labels"]["severity"] == "warning"
