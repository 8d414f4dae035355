"""End to end with real servers: Prometheus scrapes a worker fed by the simulator and the
breach-rate rule fires; the alert bridge delivers stream alerts to a real Alertmanager, where an
open mass incident inhibits its city's per-ticket breach alerts."""

import json
import re
import threading
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from tests.factories import encode, received
from tests.harness import REPO, isolated_settings, wait_until, worker_process
from tests.services import alertmanager, get_json, prometheus
from ticketstream.oversight.alerts import ticket_breach
from ticketstream.topology import ALERTS, INBOUND
from ticketstream.workers.alert_bridge import run_bridge
from ticketstream.workers.topics import create_topics

pytestmark = pytest.mark.integration
FAST_POLICY = Path(__file__).parent / "data" / "fast_sla_policy.toml"


def test_prometheus_scrapes_a_worker_and_the_breach_rate_rule_fires(bootstrap, tmp_path: Path):
    settings = isolated_settings(bootstrap, tmp_path, sla_policy=FAST_POLICY, sla_tick_seconds=0.1)
    create_topics(settings)
    rules = (REPO / "monitoring" / "rules" / "ticketstream.rules.yml").read_text()
    # The real expression, without its 5-minute `for`, so a test can watch it fire.
    rules = re.sub(r"(alert: SlaBreachRateHigh\n(?:.*\n)*?\s+for:) 5m", r"\1 0s", rules)
    (tmp_path / "rules.yml").write_text(rules)
    (tmp_path / "prometheus.yml").write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp_path / "rules.yml")],
                "scrape_configs": [
                    {
                        "job_name": "ticketstream-workers",
                        "static_configs": [{"targets": [f"127.0.0.1:{settings.web_port}"]}],
                    }
                ],
            }
        )
    )
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=5)
    with worker_process(settings, tmp_path / "worker.log"), prometheus(tmp_path / "prometheus.yml", tmp_path) as prom:

        def query(expr: str) -> list:
            return get_json(f"{prom}/api/v1/query?query={urllib.parse.quote(expr)}")["data"]["result"]

        wait_until(lambda: query('up{job="ticketstream-workers"} == 1'), 30, "Prometheus to scrape the worker")
        at = datetime.now(UTC).isoformat()
        for i in range(40):  # network complaints nobody answers: 40 response breaches in seconds
            event = received(f"P{i}", occurred_at=at, content="手機信號差，網速很慢")
            producer.send(settings.topic(INBOUND), key=event["ticket_id"].encode(), value=encode(event))
        producer.flush()
        wait_until(lambda: query("sum(ticketstream_intake_accepted_total) >= 40"), 60, "the metrics to move")

        def firing() -> list:
            return [
                a
                for a in get_json(f"{prom}/api/v1/alerts")["data"]["alerts"]
                if a["labels"]["alertname"] == "SlaBreachRateHigh" and a["state"] == "firing"
            ]

        wait_until(firing, 90, "SlaBreachRateHigh to fire")
        assert firing()[0]["labels"]["team"] == "network_ops"
        assert query('sum(ticketstream_open_tickets{team="network_ops"}) >= 40')


def test_the_bridge_delivers_stream_alerts_and_an_incident_inhibits_its_tickets(bootstrap, tmp_path: Path):
    settings = isolated_settings(bootstrap, tmp_path)
    create_topics(settings)
    now = datetime.now(UTC)
    records = [
        {
            "id": "mass_incident:INC:廣州|technical:1",
            "status": "firing",
            "labels": {
                "alertname": "MassIncident",
                "incident": "INC:廣州|technical:1",
                "city": "廣州",
                "category": "technical",
                "severity": "critical",
            },
            "annotations": {"summary": "outage"},
            "starts_at": now.timestamp(),
            "ends_at": None,
        },
        ticket_breach("T1", 1, "response", "L3", "network_ops", "廣州", "INC:廣州|technical:1", now),
        ticket_breach("T2", 1, "response", "L3", "billing", "深圳", None, now),
    ]
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    for record in records + records[1:2]:  # T1 twice: posted once
        producer.send(settings.topic(ALERTS), key=record["id"].encode(), value=json.dumps(record).encode())
    producer.flush()
    with alertmanager(REPO / "monitoring" / "alertmanager.yml", tmp_path) as am:
        stop = threading.Event()
        bridge = threading.Thread(target=run_bridge, args=(settings, am, 2.0, stop), daemon=True)
        bridge.start()
        try:

            def alerts() -> dict[str, dict]:
                return {
                    a["labels"].get("ticket") or a["labels"]["alertname"]: a for a in get_json(f"{am}/api/v2/alerts")
                }

            wait_until(lambda: {"MassIncident", "T1", "T2"} <= set(alerts()), 30, "the three alerts in Alertmanager")
            wait_until(lambda: alerts()["T1"]["status"]["state"] == "suppressed", 30, "T1 to be inhibited")
            current = alerts()
            assert current["T1"]["status"]["inhibitedBy"]
            assert current["T2"]["status"]["state"] == "active" and not current["T2"]["status"]["inhibitedBy"]
            # Resolving T2 through the stream ends it in Alertmanager.
            resolved = ticket_breach("T2", 1, "response", "L3", "billing", "深圳", None, now, met_at=datetime.now(UTC))
            producer.send(settings.topic(ALERTS), key=resolved["id"].encode(), value=json.dumps(resolved).encode())
            producer.flush()
            wait_until(
                lambda: (
                    "T2"
                    not in {
                        a["labels"].get("ticket")
                        for a in get_json(f"{am}/api/v2/alerts?active=true&silenced=false&inhibited=false")
                    }
                ),
                30,
                "T2 to resolve",
            )
            # Firing alerts are re-sent (every 2 s here), so they outlive Alertmanager's resolve_timeout.
            ends = datetime.fromisoformat(alerts()["MassIncident"]["endsAt"].replace("Z", "+00:00"))
            wait_until(
                lambda: datetime.fromisoformat(alerts()["MassIncident"]["endsAt"].replace("Z", "+00:00")) > ends,
                30,
                "a re-send to push endsAt forward",
            )
        finally:
            stop.set()
            bridge.join(timeout=15)
