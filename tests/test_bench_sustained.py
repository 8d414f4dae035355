"""bench_pipeline.py's sustained rate (the middle of a run's tickets by completion time): pure, no Kafka."""

from __future__ import annotations

import pytest

from tests.benchmarks.bench_pipeline import sustained


def test_the_slow_start_and_the_tail_are_left_out() -> None:
    start = [0, 2_000, 4_000]  # a stalled start: three tickets in the first 4 s
    steady = [5_000 + i for i in range(0, 10_000, 10)]  # then 100 a second for 10 s
    tail = [16_000, 19_000]
    rate = sustained(start + steady + tail)
    assert rate == pytest.approx(100, rel=0.02)
    whole = (len(start + steady + tail) - 1) / 19  # first to last: what the run's seconds give
    assert whole < 60


def test_too_few_or_simultaneous_tickets_give_none() -> None:
    assert sustained([]) is None
    assert sustained([5]) is None
    assert sustained([7, 7, 7, 7, 7, 7, 7, 7, 7, 7]) is None
