"""Generates the Grafana dashboards in dashboards/ (run it after changing a panel):

    .venv/bin/python monitoring/grafana/dashboards.py

Panels use only metrics the workers export; the test suite parses every query with promtool and
checks the metric names against the workers' registry, and checks these files are up to date.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).parent / "dashboards"

DASHBOARDS: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "operations-overview": (
        "ticketstream · operations overview",
        [
            ("Inbound events / s by type", "sum by (type) (rate(ticketstream_intake_accepted_total[5m]))", "ops"),
            ("New complaints / s by channel", "sum by (channel) (rate(ticketstream_complaints_total[5m]))", "ops"),
            ("Open tickets by team (backlog)", "sum by (team) (ticketstream_open_tickets)", "short"),
            ("Open tickets by grade", "sum by (grade) (ticketstream_open_tickets)", "short"),
            (
                "SLA breaches / min by team",
                'sum by (team) (rate(ticketstream_sla_events_total{kind="breach"}[5m])) * 60',
                "short",
            ),
            ("At-risk stages by team (past 75 %, not met)", "sum by (team) (ticketstream_at_risk_stages)", "short"),
            ("Open mass incidents", "sum(ticketstream_open_incidents)", "short"),
            ("Dead letters / s by reason", "sum by (reason) (rate(ticketstream_deadletters_total[5m]))", "ops"),
        ],
    ),
    "sla": (
        "ticketstream · SLA by team, grade and stage",
        [
            (
                "On-time rate (及時率) by stage",
                'sum by (stage) (rate(ticketstream_sla_completions_total{on_time="true"}[1h])) / sum by (stage) (rate(ticketstream_sla_completions_total[1h]))',
                "percentunit",
            ),
            (
                "On-time rate by team",
                'sum by (team) (rate(ticketstream_sla_completions_total{on_time="true"}[1h])) / sum by (team) (rate(ticketstream_sla_completions_total[1h]))',
                "percentunit",
            ),
            (
                "Breaches / h by stage and grade",
                'sum by (stage, grade) (increase(ticketstream_sla_events_total{kind="breach"}[1h]))',
                "short",
            ),
            (
                "Escalations / h by team",
                'sum by (team) (increase(ticketstream_sla_events_total{kind="escalated"}[1h]))',
                "short",
            ),
            (
                "Threshold firing delay p99",
                "histogram_quantile(0.99, sum by (le) (rate(ticketstream_sla_fire_delay_seconds_bucket[5m])))",
                "s",
            ),
            (
                "At-risk stages by stage and grade (past 75 %, not met)",
                "sum by (stage, grade) (ticketstream_at_risk_stages)",
                "short",
            ),
            ("Open tickets by team and grade", "sum by (team, grade) (ticketstream_open_tickets)", "short"),
            ("Tickets with pending thresholds", "sum(ticketstream_deadline_index_tickets)", "short"),
        ],
    ),
    "customer-experience": (
        "ticketstream · customer experience KPIs",
        [
            (
                "Satisfaction index (score share of 5, target 90)",
                "100 * sum(rate(ticketstream_satisfaction_score_sum[6h])) / (5 * sum(rate(ticketstream_satisfaction_score_count[6h])))",
                "short",
            ),
            (
                "Repeat-complaint rate (投訴重複率)",
                "sum(rate(ticketstream_repeat_complaints_total[1d])) / sum(rate(ticketstream_complaints_total[1d]))",
                "percentunit",
            ),
            (
                "Closed-loop rate (閉環率)",
                "sum(rate(ticketstream_tickets_closed_total[1d])) / sum(rate(ticketstream_complaints_total[1d]))",
                "percentunit",
            ),
            (
                "First-response on-time rate",
                'sum(rate(ticketstream_sla_completions_total{stage="response",on_time="true"}[1d])) / sum(rate(ticketstream_sla_completions_total{stage="response"}[1d]))',
                "percentunit",
            ),
            ("Complaints by category / h", "sum by (category) (increase(ticketstream_triaged_total[1h]))", "short"),
            ("Left to manual triage / h", "sum(increase(ticketstream_manual_triage_total[1h]))", "short"),
        ],
    ),
    "pipeline-health": (
        "ticketstream · pipeline health",
        [
            ("Consumer lag by topic", "sum by (topic) (ticketstream_consumer_lag_messages)", "short"),
            ("Workers up", 'sum(up{job="ticketstream-workers"})', "short"),
            (
                "Channel clients: sent / s by kind",
                "sum by (kind) (rate(ticketstream_client_sent_messages_total[5m]))",
                "ops",
            ),
            (
                "Intake processing p99",
                "histogram_quantile(0.99, sum by (le) (rate(ticketstream_intake_processing_seconds_bucket[5m])))",
                "s",
            ),
            (
                "Occurred-to-triaged p99",
                "histogram_quantile(0.99, sum by (le) (rate(ticketstream_triage_latency_seconds_bucket[5m])))",
                "s",
            ),
            (
                "Occurred-to-SLA-applied p99",
                "histogram_quantile(0.99, sum by (le) (rate(ticketstream_sla_apply_latency_seconds_bucket[5m])))",
                "s",
            ),
            (
                "Dead-letter share of intake",
                "sum(rate(ticketstream_deadletters_total[5m])) / sum(rate(ticketstream_intake_processing_seconds_count[5m]))",
                "percentunit",
            ),
            ("Duplicates dropped / s", "sum(rate(ticketstream_intake_duplicates_total[5m]))", "ops"),
            (
                "Ticket agent messages / s by source",
                "sum by (source) (rate(ticketstream_ticket_messages_total[5m]))",
                "ops",
            ),
            (
                "Calendar fallbacks (years without data)",
                "sum by (year) (increase(ticketstream_calendar_fallbacks_total[1d]))",
                "short",
            ),
            (
                "Alert bridge: records / s by outcome",
                "sum by (outcome) (rate(ticketstream_bridge_records_total[5m]))",
                "ops",
            ),
            ("Alert bridge: oldest undelivered alert", "max(ticketstream_bridge_oldest_undelivered_age_seconds)", "s"),
            (
                "Alert bridge: dead-lettered by reason / h",
                "sum by (reason) (increase(ticketstream_bridge_dead_lettered_total[1h]))",
                "short",
            ),
            ("Alert bridge: posts / s by result", "sum by (result) (rate(ticketstream_bridge_posts_total[5m]))", "ops"),
        ],
    ),
}


def dashboard(uid: str, title: str, panels: list[tuple[str, str, str]]) -> dict:
    return {
        "uid": f"ticketstream-{uid}",
        "title": title,
        "tags": ["ticketstream"],
        "timezone": "browser",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "panels": [
            {
                "id": i + 1,
                "type": "timeseries",
                "title": name,
                "datasource": {"type": "prometheus", "uid": "prometheus"},
                "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [{"refId": "A", "expr": expr, "datasource": {"type": "prometheus", "uid": "prometheus"}}],
            }
            for i, (name, expr, unit) in enumerate(panels)
        ],
    }


def render() -> dict[str, str]:
    return {
        f"{uid}.json": json.dumps(dashboard(uid, title, panels), indent=2, ensure_ascii=False) + "\n"
        for uid, (title, panels) in DASHBOARDS.items()
    }


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(OUT / name)
