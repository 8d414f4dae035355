"""The shipped Alertmanager configuration on a real Alertmanager (Debian's prometheus-alertmanager):
a burst of 1,000 ticket breaches, posted by the bridge's own core, reaches a webhook receiver as a
handful of notifications (one per team, grade and stage, plus the duty manager's for L1/L2), and
the breaches of an open incident's tickets are held back by the incident's page. Timings are the
shipped ones scaled from minutes to seconds (`alertmanager_config_for_tests`)."""

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.harness import REPO, wait_until
from tests.services import WebhookReceiver, alertmanager, alertmanager_config_for_tests, get_json
from ticketstream.oversight.alerts import mass_incident, ticket_breach
from ticketstream.oversight.bridge import BridgeCore
from ticketstream.workers.alert_bridge import http_post

pytestmark = pytest.mark.integration
INCIDENT = "INC:廣州|technical:1800000000"


def test_a_thousand_ticket_breaches_become_a_handful_of_grouped_notifications(tmp_path: Path):
    webhook = WebhookReceiver()
    config = alertmanager_config_for_tests(
        REPO / "monitoring" / "alertmanager.yml", webhook.url, tmp_path / "alertmanager.yml", seconds_per_minute=2
    )
    rng = random.Random(5)
    try:
        with alertmanager(config, tmp_path) as am:
            # Breaches fire at their due instant, so they reach Alertmanager fresh (an alert older
            # than group_wait is flushed at once, without waiting for the rest of its burst).
            now = datetime.now(UTC)
            records = [mass_incident(INCIDENT, "廣州", "technical", 120, 3.0, now.timestamp() - 1, None)]
            expected: dict[tuple[str, str], set[str]] = {}
            held_back = set()
            for i in range(1000):
                team, grade = rng.choice(["network_ops", "billing"]), rng.choice(["L2", "L3"])
                linked = team == "network_ops" and i % 10 == 0
                ticket = f"GRP-{i:05d}"
                records.append(
                    ticket_breach(
                        ticket,
                        1,
                        "response",
                        grade,
                        team,
                        "廣州" if linked else "深圳",
                        INCIDENT if linked else None,
                        now - timedelta(milliseconds=rng.uniform(0, 300)),
                    )
                )
                (held_back.add(ticket) if linked else expected.setdefault((team, grade), set()).add(ticket))
            core = BridgeCore(http_post(am + "/api/v2/alerts"))
            for offset, record in enumerate(records):
                core.add(0, offset, json.dumps(record).encode(), now.timestamp())
            core.deliver(now.timestamp())
            assert core.counts["delivered"] == 1001 and not core.take_dead()
            wait_until(lambda: len(get_json(f"{am}/api/v2/alerts")) == 1001, 30, "Alertmanager to hold every alert")

            def in_team_notifications() -> set[str]:
                return {
                    a["labels"]["ticket"]
                    for path, body in list(webhook.received)
                    if path.startswith("team-")
                    for a in body["alerts"]
                }

            def settled() -> bool:  # every breach notified to its team, and the incident paged
                return in_team_notifications() >= set().union(*expected.values()) and bool(
                    webhook.notifications("oncall-incidents")
                )

            wait_until(settled, 60, "a notification for every group")
            notifications = webhook.notifications()
            by_receiver = Counter(path for path, _ in webhook.received)
            # 4 team groups (2 teams x 2 grades, one stage), 2 duty-manager groups (L2 of each team), 1 incident page.
            assert len(notifications) <= 8, by_receiver
            assert by_receiver["oncall-incidents"] == 1
            assert by_receiver["team-network-ops"] == 2 and by_receiver["team-billing"] == 2
            assert by_receiver["oncall-critical"] == 2
            delivered: dict[tuple[str, str], set[str]] = {}
            for path, body in webhook.received:
                if path.startswith("team-"):
                    key = (body["groupLabels"]["team"], body["groupLabels"]["grade"])
                    assert body["groupLabels"]["stage"] == "response"
                    delivered.setdefault(key, set()).update(a["labels"]["ticket"] for a in body["alerts"])
                    assert all(a["annotations"]["action"] for a in body["alerts"])
            assert {k: len(v) for k, v in delivered.items()} == {k: len(v) for k, v in expected.items()}
            assert delivered == expected  # every breach in its group, none of the incident's
            assert not held_back & set().union(*delivered.values())
            suppressed = [a for a in get_json(f"{am}/api/v2/alerts") if a["status"]["state"] == "suppressed"]
            assert {a["labels"]["ticket"] for a in suppressed} == held_back
    finally:
        webhook.close()
