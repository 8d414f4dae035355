"""The benchmark report's rendering (tests/benchmarks/report.py) on canned results: no Kafka, seconds.

`make bench` runs for a quarter of an hour, so nothing else would notice this code rotting."""

from __future__ import annotations

from pathlib import Path

from tests.benchmarks.report import REPO, recorded_sla, render

MACHINE = {
    "cpus": 2,
    "machine": "x86_64",
    "python": "3.11.7",
    "load_average": [1.5, 1.2, 1.0],
    "date": "2026-11-30T12:00:00+00:00",
}


def record(benchmark: str, params: dict, results: dict) -> dict:
    return {
        "benchmark": benchmark,
        "command": f".venv/bin/python tests/benchmarks/bench_{benchmark}.py",
        "params": params,
        "machine": MACHINE,
        "results": results,
    }


def canned() -> dict:
    run = {
        "workers": 1,
        "seconds": 36.3,
        "events_per_s": 541.0,
        "complaints_per_s": 110.0,
        "ratio_to_baseline": 0.0395,
        "cpu_us_per_event": 2000.0,
        "produced_per_event": {"tickets.state": 1.0},
        "consumed_per_event": 2.62,
    }
    two = dict(run, workers=2, seconds=30.25, events_per_s=649.2, complaints_per_s=132.0, cpu_us_per_event=2400.0)
    sla = [
        record(
            "sla",
            {"tickets": t, "probes": 300, "store": "rocksdb"},
            {
                "load_seconds": 4.0,
                "tick_seconds": 0.25,
                "latency_p50_s": p50,
                "latency_p99_s": p99,
                "latency_max_s": p99 + 0.01,
                "rss_bytes_per_ticket": 4321.0,
                "recovery_serving_s": 8.8,
                "recovery_firing_s": rec,
            },
        )
        for t, p50, p99, rec in ((10_000, 0.111, 0.222, 10.5), (100_000, 0.121, 0.262, 12.25))
    ]
    return {
        "run": {"kafka": "Apache Kafka 4.1.0 (embedded)", "minutes": 16.0, "quick": False},
        "pipeline": record(
            "pipeline",
            {
                "complaints": 4000,
                "events": 19668,
                "aged": False,
                "partitions": 12,
                "workers": [1, 2],
                "backlog": 100000,
            },
            {
                "baseline_per_s": 13681.0,
                "runs": [run, two],
                "backlog": [
                    {"workers": 1, "events": 100000, "seconds": 187.5, "ready_seconds": 5.0},
                    {"workers": 2, "events": 100000, "seconds": 150.0, "ready_seconds": 6.0},
                ],
            },
        ),
        "pipeline-complaints": record(
            "pipeline-complaints",
            {"complaints": 8000, "events": 8000, "aged": False, "complaints_only": True, "workers": [1]},
            {
                "baseline_per_s": 12500.0,
                "runs": [
                    dict(
                        run,
                        seconds=12.5,
                        events_per_s=640.0,
                        complaints_per_s=640.0,
                        ratio_to_baseline=0.0512,
                        cpu_us_per_event=1650.0,
                        produced_per_event={"tickets.state": 1.0, "tickets.triaged": 1.0, "queue.billing": 1.25},
                        consumed_per_event=4.0,
                    )
                ],
                "backlog": [],
            },
        ),
        "intake": record(
            "intake",
            {"events": 20000, "repeat": 2},
            {
                "baseline_per_s": [21800.0, 46600.0],
                "intake_per_s": [1910.0, 2060.0],
                "median_baseline_per_s": 34200.0,
                "median_intake_per_s": 1985.0,
                "ratio": 0.05804,
            },
        ),
        "triage": record(
            "triage",
            {"complaints": 10000, "repeat": 3},
            {
                "baseline_per_s": [71800.0],
                "triage_per_s": [5100.0],
                "rules_only_per_s": [12500.0],
                "median_baseline_per_s": 71800.0,
                "median_triage_per_s": 5100.0,
                "median_rules_only_per_s": 12500.0,
                "ratio": 0.0710,
                "ratio_rules_only": 0.1741,
            },
        ),
        "sla": sla,
    }


def test_recorded_figures_are_read_from_the_readme() -> None:
    rows = recorded_sla((REPO / "README.md").read_text())
    by_size = {int(r["tickets"]): r for r in rows}
    assert set(by_size) >= {100_000, 1_000_000}
    million = by_size[1_000_000]
    assert 0 < million["latency_p50_s"] <= million["latency_p99_s"] <= million["latency_max_s"]
    assert 0 < million["recovery_serving_s"] <= million["recovery_firing_s"]


def test_render_writes_the_page_and_its_figures(tmp_path: Path) -> None:
    recorded = [
        {
            "tickets": 1_000_000.0,
            "latency_p50_s": 0.132,
            "latency_p99_s": 0.34,
            "latency_max_s": 0.343,
            "rss_bytes_per_ticket": 515.0,
            "recovery_serving_s": 10.4,
            "recovery_firing_s": 17.9,
        }
    ]
    page = render(canned(), recorded, tmp_path)
    text = page.read_text()
    for name in ("scaling.png", "sla_latency.png", "sla_recovery.png", "intake.png", "triage.png"):
        png = tmp_path / "benchmarks" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, name
        assert f"(benchmarks/{name})" in text
    # The numbers and the ratios, computed from them, not copied.
    assert "| 2 | 649 | 132 | 30.2 | **1.20** |" in text
    assert "2 workers process 1.20x the events/s of one" in text and "2 cores shared by the broker" in text
    assert "| 2 | 100,000 | 150.0 s | 667 | 6.0 s | **0.80** |" in text
    assert "| 8,000 | 12.5 | 640 | 0.051 | 1,650 µs | 3.25 / 4.00 |" in text
    assert "## Fresh complaints alone: one worker" in text
    assert "one worker finishes 640 fresh complaints a second end to end, 0.051 of the bare loop" in text
    assert "2 workers catch up on a 100,000-event backlog in 0.80 of the time 1 worker takes." in text
    assert "Bare aiokafka consume-and-produce loop, same broker, same run: 13,681 events/s." in text
    assert "| 100,000 | this run | 0.121 s | 0.262 s | 0.272 s | **1.05** | 4,321 B |" in text
    assert "10x the open tickets (10,000 → 100,000) change the breach latency's p99 by 1.18x" in text
    assert "| 1,000,000 | *recorded earlier (README)* | 0.132 s | 0.340 s | 0.343 s |" in text
    assert "| 1,000,000 | *recorded earlier (README)* | 10.4 s | 17.9 s |" in text
    assert "with 10x the open tickets, firing again after a crash takes 1.17x as long" in text
    assert "| median | 34,200 | 1,985 | **0.058** |" in text
    assert "| triage core (model + rules, grade, route, record) | 5,100 | 196.1 | 0.071 |" in text
    assert "2 CPUs (x86_64), Python 3.11.7, Apache Kafka 4.1.0 (embedded)" in text
    assert "Small run" not in text


def test_a_quick_run_says_so(tmp_path: Path) -> None:
    data = canned()
    del data["pipeline"], data["intake"]
    text = render(data, [], tmp_path, quick=True).read_text()
    assert "**Small run" in text and "## Triage core" in text and "## Scaling" not in text
