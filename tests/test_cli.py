"""The command line as an operator uses it, against the real broker."""

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import encode, lifecycle, received
from tests.harness import REPO, TopicReader, isolated_settings, wait_until
from ticketstream.streams.metrics import scrape
from ticketstream.topology import INBOUND, STATE
from ticketstream.workers.embedded_kafka import free_ports


def run(args, settings=None, stdin: bytes | None = None, timeout=120):
    env = settings.as_env() if settings else None
    return subprocess.run(
        [sys.executable, "-m", "ticketstream.workers.cli", *args],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        timeout=timeout,
    )


def test_help_explains_every_command():
    out = run(["--help"]).stdout.decode()
    for command in ("demo", "kafka", "topics", "worker", "publish", "simulate", "schema"):
        assert command in out
    assert "TICKETSTREAM_BOOTSTRAP_SERVERS" in out
    sim_help = run(["simulate", "--help"]).stdout.decode()
    assert "--rate" in sim_help and "--duration" in sim_help and "--incident" in sim_help


def test_bad_setting_fails_at_start_with_its_name():
    result = subprocess.run(
        [sys.executable, "-m", "ticketstream.workers.cli", "topics", "describe"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "TICKETSTREAM_PARTITIONS": "lots"},
        capture_output=True,
    )
    assert result.returncode == 2
    assert b"partitions" in result.stderr and b"Traceback" not in result.stderr


def test_no_kafka_configured_is_a_clear_error(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "ticketstream.workers.cli", "topics", "describe"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "TICKETSTREAM_KAFKA_DIR": str(tmp_path)},
        capture_output=True,
    )
    assert result.returncode == 2
    assert b"ticketstream kafka start" in result.stderr


def test_schema_export(tmp_path: Path):
    result = run(["schema", "export", str(tmp_path / "schemas")])
    assert result.returncode == 0
    assert (tmp_path / "schemas" / "complaint.received.schema.json").exists()


@pytest.mark.integration
def test_topics_create_is_idempotent_and_describe_shows_policies(bootstrap, tmp_path: Path):
    settings = isolated_settings(bootstrap, tmp_path)
    first = run(["topics", "create"], settings)
    assert first.returncode == 0, first.stderr
    assert b"created" in first.stdout
    second = run(["topics", "create"], settings)
    assert second.returncode == 0 and b"created" not in second.stdout
    described = json.loads(run(["topics", "describe", "--json"], settings).stdout)
    by_name = {row["topic"]: row for row in described}
    state = by_name[settings.topic(STATE)]
    assert state["exists"] and state["config"]["cleanup.policy"] == "compact"
    assert by_name[settings.topic(INBOUND)]["partitions"] == settings.partitions
    assert all(row["exists"] for row in described)


@pytest.mark.integration
def test_publish_reports_rejected_lines_and_sends_the_rest(bootstrap, tmp_path: Path):
    settings = isolated_settings(bootstrap, tmp_path)
    assert run(["topics", "create"], settings).returncode == 0
    lines = [
        encode(received("T-1")),
        b'{"broken json',
        encode(lifecycle("ticket.responded", "T-1")),
        encode(received("T-2", occurred_at="2026-11-23T10:00:00")),  # naive time
        b"",
        encode(lifecycle("ticket.survey_completed", "T-1", score=9)),
        encode(received("T-3")),
    ]
    result = run(["publish", "-"], settings, stdin=b"\n".join(lines) + b"\n")
    err = result.stderr.decode()
    assert result.returncode == 1
    assert "line 2: rejected: invalid_json" in err
    assert "line 4: rejected: schema_invalid" in err
    assert "line 6: rejected: schema_invalid" in err
    assert "published 3 event(s); rejected 3 line(s)" in err
    reader = TopicReader(settings, settings.topic(INBOUND))
    records = reader.read_until(3, 30)
    assert sorted(r.key for r in records) == [b"T-1", b"T-1", b"T-3"]
    reader.close()
    ok = run(["publish", "-", "--rate", "100"], settings, stdin=encode(received("T-9")) + b"\n")
    assert ok.returncode == 0


def test_classify_offline_uses_the_stream_code(tmp_path: Path):
    lines = [
        encode(received("T-1", content="家裡寬帶斷網三天了")),
        json.dumps({"content": "请问积分怎么兑换话费", "channel": "app"}, ensure_ascii=False).encode(),
        b'{"type": "ticket.resolved"}',
        encode(received("T-4", channel="miit", content="网速有点慢")),
    ]
    result = run(["classify", "-"], stdin=b"\n".join(lines) + b"\n")
    out = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert result.returncode == 1 and b"1 line(s) could not be classified" in result.stderr
    assert len(out) == 4
    assert (out[0]["category"], out[0]["grade"], out[0]["team"]) == ("technical.network_quality", "L2", "network_ops")
    assert (out[1]["category"], out[1]["grade"]) == ("business.tariff_billing", "L4")  # an enquiry, by its topic
    assert out[0]["model_version"].startswith("lr1-")
    assert out[2]["error"] and out[2]["line"] == 3
    assert out[3]["grade"] == "L2" and out[3]["team"] == "complaint_desk"
    assert any("regulator_channel" in r for r in out[3]["reasons"])
    for row in out[:2]:
        assert {"ticket_id", "category", "grade", "team", "confidence", "reasons"} <= set(row)


def test_classify_repeat_history_follows_file_order():
    lines = []
    for i, day in enumerate(("01", "05", "09")):
        event = received(f"R-{i}", occurred_at=f"2026-11-{day}T10:00:00+08:00", content="网速很慢")
        event["data"]["customer"]["id"] = "SAME"
        lines.append(encode(event))
    out = [json.loads(x) for x in run(["classify"], stdin=b"\n".join(lines)).stdout.decode().splitlines()]
    assert [o["grade"] for o in out] == ["L3", "L3", "L2"]


def test_an_invalid_rule_file_is_refused_with_the_problem(tmp_path: Path):
    rules = tmp_path / "routing.toml"
    rules.write_text('default_team = "nobody"\n[[rules]]\nname = "x"\nteam = "billing"\n')
    result = run(["classify", "--routing-rules", str(rules)], stdin=b"")
    assert result.returncode == 2
    assert b"default_team" in result.stderr and str(rules).encode() in result.stderr


def test_simulate_serves_what_it_sent_on_its_own_metrics_port(bootstrap, tmp_path: Path):
    settings = isolated_settings(bootstrap, tmp_path)
    assert run(["topics", "create"], settings).returncode == 0
    port = free_ports(1)[0]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ticketstream.workers.cli",
            "simulate",
            "--rate",
            "20",
            "--duration",
            "20",
            "--drain",
            "0",
            "--metrics-port",
            str(port),
        ],
        cwd=REPO,
        env=settings.as_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: (scrape(port, "ticketstream_client_sent_messages_total", {"kind": "valid"}) or 0) >= 20,
            30,
            "the simulator's /metrics to count 20 complaints sent",
        )
        assert scrape(port, "ticketstream_client_send_failures_total") == 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # A port already taken is a clear error at start, not a traceback.
    with socket.socket() as taken:
        taken.bind((settings.web_host, 0))
        taken.listen()
        busy = run(["simulate", "--duration", "1", "--metrics-port", str(taken.getsockname()[1])], settings, timeout=60)
    assert busy.returncode != 0 and "--metrics-port" in busy.stderr.decode() and "Traceback" not in busy.stderr.decode()


@pytest.mark.integration
def test_demo_runs_the_whole_pipeline_and_summarises_it(bootstrap, tmp_path: Path):
    """The README's first command in short: traffic in, triage, queues, SLA warnings, a summary."""
    settings = isolated_settings(bootstrap, tmp_path)
    result = run(["demo", "--duration", "25", "--rate", "10"], settings, timeout=240)
    out = result.stdout.decode()
    assert result.returncode == 0, out[-3000:] + result.stderr.decode()[-3000:]
    assert "=== ticketstream demo summary ===" in out and out.rstrip().endswith("completed")
    summary = out[out.index("=== ticketstream demo summary ===") :]
    triaged = int(re.search(r"triaged complaints:\s+(\d+)", summary).group(1))
    warnings = int(re.search(r"SLA events:\s+warnings (\d+)", summary).group(1))
    assert triaged >= 200 and warnings > 0, summary
    assert re.search(r"dead-lettered:\s+[1-9]", summary), summary  # the simulator's malformed share
