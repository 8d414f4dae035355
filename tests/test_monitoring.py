"""Oversight files: Prometheus config and alert rules (promtool), Alertmanager config (amtool),
Grafana dashboards (every query parses and uses only metrics the workers export), and the
exposition of a live worker (`promtool check metrics`)."""

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import ticketstream.streams.metrics  # noqa: F401 - registers every metric the workers export
import ticketstream.workers.alert_bridge  # noqa: F401 - and those of the alert bridge
import ticketstream.workers.publisher  # noqa: F401 - and those of the channel-side clients (publish, simulate)
from tests.harness import REPO, isolated_settings, worker_process

MONITORING = REPO / "monitoring"
DASHBOARDS = MONITORING / "grafana" / "dashboards"


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: `make test` installs it (Debian packages prometheus, prometheus-alertmanager)"
    return path


def run(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=120)


def test_prometheus_config_and_rules_are_valid():
    result = run(tool("promtool"), "check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "12 rules found" in result.stdout + result.stderr


def test_alert_rules_unit_tests_pass():
    result = run(tool("promtool"), "test", "rules", "ticketstream.tests.yml", cwd=MONITORING / "rules")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_rule_has_a_unit_test():
    rules = set(re.findall(r"- alert: (\w+)", (MONITORING / "rules" / "ticketstream.rules.yml").read_text()))
    tested = set(re.findall(r"alertname: (\w+)", (MONITORING / "rules" / "ticketstream.tests.yml").read_text()))
    assert rules and rules <= tested, rules - tested


def test_alertmanager_config_routes_and_inhibits():
    config = MONITORING / "alertmanager.yml"
    assert run(tool("amtool"), "check-config", str(config)).returncode == 0

    def receiver(*labels: str) -> str:
        return run(tool("amtool"), "config", "routes", "test", f"--config.file={config}", *labels).stdout.strip()

    assert receiver("alertname=MassIncident", "incident=INC:1") == "oncall-incidents"
    assert receiver("alertname=TicketSlaBreach", "team=billing", "grade=L3") == "team-billing"
    assert (
        receiver("alertname=TicketSlaBreach", "team=network_ops", "grade=L1", "severity=critical")
        == "oncall-critical,team-network-ops"
    )
    # Rule alerts carry team and grade now, and route like the stream alerts.
    assert (
        receiver("alertname=SlaBreachRateHigh", "team=billing", "grade=L2", "severity=critical")
        == "oncall-critical,team-billing"
    )
    assert receiver("alertname=OnTimeRateLow", "team=frontline", "grade=L3", "stage=response") == "team-service"
    assert receiver("alertname=AlertBridgeFailing", "severity=critical") == "oncall-critical"
    assert receiver("alertname=DeadLetterRateHigh", "severity=warning") == "oncall-default"
    text = config.read_text()
    assert 'source_matchers: [alertname="MassIncident"]' in text and "equal: [incident]" in text


def test_ticket_breaches_are_grouped_per_team_grade_and_stage_with_calm_timings():
    # (No YAML parser among the dependencies; the real server test is test_alertmanager_grouping.py.)
    text = (MONITORING / "alertmanager.yml").read_text()
    block = text[text.index('- matchers: [alertname="TicketSlaBreach"]') :].split("routes:")[0]
    assert "group_by: [alertname, team, grade, stage]" in block
    assert all(timing in block for timing in ("group_wait: 1m", "group_interval: 10m", "repeat_interval: 12h"))


def test_every_rule_alert_says_what_to_do_and_carries_team_and_grade_where_its_metric_has_them():
    text = (MONITORING / "rules" / "ticketstream.rules.yml").read_text()
    blocks = text.split("- alert: ")[1:]
    assert len(blocks) == 12
    for block in blocks:
        name = block.split()[0]
        assert "summary:" in block and "action:" in block, name
        if "ticketstream_sla_" in block:
            assert "team" in block.split("labels:")[0] and "grade" in block.split("labels:")[0], name


def exported_names() -> set[str]:
    names = {"up"}
    for family in REGISTRY.collect():
        for sample in family.samples:
            names.add(sample.name)
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_sum", "_count"))
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                out.append((f"{path.name}: {panel['title']}", target["expr"]))
    return out


def test_dashboards_are_generated_from_code_and_current():
    from monitoring_dashboards import render  # noqa: PLC0415 - loaded from the repo path below

    assert {p.name: p.read_text() for p in DASHBOARDS.glob("*.json")} == render()


def test_every_dashboard_query_parses_and_uses_exported_metrics(tmp_path):
    queries = dashboard_queries()
    assert len(queries) >= 20
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [{"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(queries)],
            }
        ]
    }
    rule_file = tmp_path / "dashboards.rules.yml"
    rule_file.write_text(json.dumps(rules))  # JSON is YAML
    result = run(tool("promtool"), "check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr
    exported = exported_names()
    functions = {"sum", "rate", "increase", "histogram_quantile", "by", "deriv", "on", "and"}
    for where, expr in queries:
        stripped = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]', " ", expr)
        used = {
            name
            for name in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", stripped)
            if name not in functions and not name.startswith("le") and "_" in name or name == "up"
        }
        used -= {"on_time"}
        missing = used - exported
        assert not missing, f"{where}: {missing}"


@pytest.mark.integration
def test_a_live_worker_exposition_passes_promtool_check_metrics(bootstrap, tmp_path):
    settings = isolated_settings(bootstrap, tmp_path)
    with worker_process(settings, tmp_path / "w.log"):
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/metrics", timeout=5) as resp:
            text = resp.read()
    result = subprocess.run([tool("promtool"), "check", "metrics"], input=text, capture_output=True, timeout=60)
    problems = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, problems
    assert b"ticketstream_intake_accepted_total" in text or b"ticketstream_intake_accepted" in text
    # No ticket, customer or free-text labels.
    for line in text.decode().splitlines():
        if line.startswith("ticketstream_") and "{" in line:
            labels = set(re.findall(r'(\w+)="', line))
            assert labels <= {
                "type",
                "stage",
                "reason",
                "channel",
                "category",
                "grade",
                "team",
                "kind",
                "on_time",
                "le",
                "version",
                "source",
                "action",
                "alertname",
                "year",
                "topic",
                "partition",
            }, line
