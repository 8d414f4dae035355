"""`streams.metrics.child`: a metric's children remembered per label values, the same series as
`labels()`, and forgotten when the metric is cleared (the open-ticket gauges after a rebalance)."""

from prometheus_client import CollectorRegistry, Counter, Gauge

from ticketstream.streams import metrics


def _samples(metric) -> dict[tuple[str, ...], float]:
    return {
        tuple(s.labels.values()): s.value
        for m in metric.collect()
        for s in m.samples
        if s.name.endswith(("_total", "tickets"))
    }


def test_a_child_is_the_series_labels_gives_and_is_made_once():
    counter = Counter("children_test", "test", ["stage", "kind"], registry=CollectorRegistry())
    first = metrics.child(counter, "response", "breach")
    assert first is counter.labels(stage="response", kind="breach")
    assert metrics.child(counter, "response", "breach") is first
    first.inc()
    metrics.child(counter, "response", "met").inc(2)
    assert _samples(counter) == {("response", "breach"): 1.0, ("response", "met"): 2.0}


def test_after_clear_a_child_is_a_series_of_the_metric_again():
    gauge = Gauge("children_test_open_tickets", "test", ["team", "grade"], registry=CollectorRegistry())
    metrics.child(gauge, "billing", "L2").set(5)
    other = Gauge("children_test_other_tickets", "test", ["team"], registry=CollectorRegistry())
    kept = metrics.child(other, "billing")
    metrics.clear(gauge)
    assert _samples(gauge) == {}
    metrics.child(gauge, "billing", "L2").inc()  # not the detached child: the metric shows it
    assert _samples(gauge) == {("billing", "L2"): 1.0}
    assert metrics.child(other, "billing") is kept  # another metric's children stay
