"""The archiver's oversight: its alert rules pass their promtool tests, use only metrics it
exports, Prometheus scrapes it, and its exposition passes `promtool check metrics`."""

import re
import shutil
import subprocess

from prometheus_client import REGISTRY, generate_latest

from tests.harness import REPO
from ticketstream.workers import archiver

RULES = REPO / "monitoring" / "rules"


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    path = shutil.which("promtool")
    assert path, "promtool is missing: `make test` installs Debian's prometheus package"
    return subprocess.run([path, *args], cwd=RULES, input=stdin, capture_output=True, timeout=120)


def test_archiver_alert_rules_pass_their_tests_and_each_has_one():
    result = promtool("test", "rules", "archive.tests.yml")
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    rules = set(re.findall(r"- alert: (\w+)", (RULES / "archive.rules.yml").read_text()))
    tested = set(re.findall(r"alertname: (\w+)", (RULES / "archive.tests.yml").read_text()))
    assert rules == {"ArchiverFallingBehind", "ArchiverStalled", "ArchiverDown"} and rules <= tested


def test_rules_use_metrics_the_archiver_exports_and_prometheus_scrapes_it():
    archiver._initialise()  # noqa: SLF001
    exposition = generate_latest(REGISTRY).decode()
    used = set(re.findall(r"ticketstream_archive_\w+", (RULES / "archive.rules.yml").read_text()))
    assert used and all(re.search(rf"^{name}[{{ ]", exposition, re.M) for name in used), used
    config = (REPO / "monitoring" / "prometheus.yml").read_text()
    assert "job_name: ticketstream-archiver" in config and "rules/archive.rules.yml" in config
    result = promtool("check", "metrics", stdin=exposition.encode())
    problems = [
        line for line in (result.stdout + result.stderr).decode().splitlines() if "ticketstream_archive" in line
    ]
    assert not problems, problems
