"""SASL_SSL end to end: an embedded broker of its own that only speaks SASL_SSL with SCRAM-SHA-512
and a CA made by `kafka start --sasl-ssl`; every kind of client connects with the settings, and a
wrong password ends each of them at once with one clear line and exit status 1."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from tests.factories import encode, received
from tests.harness import REPO, TopicReader, cli, isolated_settings, wait_until, worker_process
from tests.services import WebhookReceiver
from ticketstream.oversight.alerts import ticket_breach
from ticketstream.settings import Settings
from ticketstream.topology import ACCEPTED, ALERTS, TRIAGED
from ticketstream.workers import embedded_kafka

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secure_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A SASL_SSL broker started by the CLI, and the client settings it wrote (client.env)."""
    directory = tmp_path_factory.mktemp("kafka-sasl")
    started = subprocess.run(
        [sys.executable, "-m", "ticketstream.workers.cli", "kafka", "start", "--sasl-ssl", "--dir", str(directory)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=150,
        env={k: v for k, v in os.environ.items() if not k.startswith("TICKETSTREAM_")},
    )
    try:
        assert started.returncode == 0, started.stderr
        env_file = directory / "client.env"
        assert f". {env_file}" in started.stdout
        assert env_file.stat().st_mode & 0o077 == 0  # the password file is the owner's only
        client_env = {}
        for line in env_file.read_text().splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            client_env[key] = shlex.split(value)[0]
        assert client_env["TICKETSTREAM_SASL_PASSWORD"] not in started.stdout + started.stderr
        yield directory, client_env
    finally:
        embedded_kafka.stop(directory)


def secure_settings(client_env: dict[str, str], tmp: Path, **extra: object) -> Settings:
    options: dict[str, object] = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": client_env["TICKETSTREAM_SASL_MECHANISM"],
        "sasl_username": client_env["TICKETSTREAM_SASL_USERNAME"],
        "sasl_password": client_env["TICKETSTREAM_SASL_PASSWORD"],
        "ssl_cafile": Path(client_env["TICKETSTREAM_SSL_CAFILE"]),
        "archive_metrics_port": 0,
        **extra,
    }
    return isolated_settings(client_env["TICKETSTREAM_BOOTSTRAP_SERVERS"], tmp, **options)


def test_every_client_works_over_sasl_ssl(secure_cluster, tmp_path: Path):
    _, client_env = secure_cluster
    settings = secure_settings(client_env, tmp_path)
    created = cli(settings, "topics", "create")
    assert created.returncode == 0, created.stderr
    assert settings.topic(ACCEPTED) in created.stdout

    now = datetime.now(UTC).isoformat()
    events = [received(f"SEC-{i}", occurred_at=now, customer={"id": f"C{i}", "tier": "ordinary"}) for i in range(20)]
    with worker_process(settings, tmp_path / "worker.log"):
        published = cli(settings, "publish", "-", stdin="".join(encode(e).decode() + "\n" for e in events))
        assert published.returncode == 0, published.stderr
        assert "published 20 event(s)" in published.stderr
        accepted = TopicReader(settings, settings.topic(ACCEPTED))
        triaged = TopicReader(settings, settings.topic(TRIAGED))
        try:
            accepted.read_until(20, 60)
            triaged.read_until(20, 30)
        finally:
            accepted.close()
            triaged.close()
        assert {json.loads(r.value)["ticket_id"] for r in triaged.records} == {e["ticket_id"] for e in events}

        def lag_seen() -> bool:
            lag = cli(settings, "lag", "--group", settings.app_id)
            return lag.returncode == 0 and f"group {settings.app_id}" in lag.stdout

        wait_until(lag_seen, 30, "the worker's committed offsets in `ticketstream lag`")

    # The other commands that read or write topics.
    outputs = {}
    for command in (
        ["topics", "describe"],
        ["incidents", "list"],
        ["triage", "corrections"],
        ["simulate", "--duration", "1", "--rate", "5", "--fast", "--drain", "0", "--metrics-port", "0"],
    ):
        result = cli(settings, *command)
        assert result.returncode == 0, (command, result.stderr)
        outputs[command[0]] = result.stdout
    assert settings.topic(ACCEPTED) in outputs["topics"] and "open incidents: 0" in outputs["incidents"]

    # The archiver: a consumer group of its own, plus a dead-letter producer.
    archived = cli(settings, "archive", "run", "--exit-when-idle", "3", timeout=90)
    assert archived.returncode == 0, archived.stderr
    listed = cli(settings, "tickets", "list", "--format", "jsonl")
    assert listed.returncode == 0, listed.stderr
    assert {json.loads(line)["ticket_id"] for line in listed.stdout.splitlines()} == {e["ticket_id"] for e in events}

    # The alert bridge: one alert on the topic reaches the (stand-in) Alertmanager.
    webhook = WebhookReceiver()
    bridge = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ticketstream.workers.cli",
            "alert-bridge",
            "--alertmanager",
            webhook.url,
            "--metrics-port",
            "0",
        ],
        cwd=REPO,
        env=settings.as_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers, acks="all", **settings.kafka_client_options()
        )
        alert = ticket_breach("SEC-7", 1, "response", "L3", "billing", "廣州", None, datetime.now(UTC))
        producer.send(settings.topic(ALERTS), key=b"SEC-7", value=json.dumps(alert).encode())
        producer.flush()
        producer.close()
        wait_until(
            lambda: (
                bridge.poll() is not None
                or any(a["labels"].get("ticket") == "SEC-7" for body in webhook.notifications() for a in body)
            ),
            60,
            "the alert at the stand-in Alertmanager",
        )
        assert bridge.poll() is None, bridge.stderr.read() if bridge.stderr else ""
    finally:
        bridge.terminate()
        bridge.wait(30)
        webhook.close()


@pytest.mark.parametrize(
    "command",
    [["publish", "-"], ["worker"], ["topics", "describe"], ["lag"], ["archive", "run"], ["alert-bridge"]],
    ids=lambda c: c[0],
)
def test_a_wrong_password_ends_at_once_with_one_line(secure_cluster, tmp_path: Path, command):
    _, client_env = secure_cluster
    settings = secure_settings(client_env, tmp_path, sasl_password="not-the-password")
    started = time.monotonic()
    result = cli(settings, *command, stdin="", timeout=30)
    took = time.monotonic() - started
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    user = client_env["TICKETSTREAM_SASL_USERNAME"]
    assert lines[-1].startswith(f"ticketstream: authentication failed for user {user!r} at 127.0.0.1:")
    assert "sasl_username/sasl_password" in lines[-1]
    assert "Traceback" not in result.stderr and "not-the-password" not in result.stderr
    assert took < 15, f"{command[0]} took {took:.1f} s to give up"


def test_a_plaintext_client_is_told_how_to_reach_the_embedded_sasl_broker(secure_cluster, tmp_path: Path):
    directory, _ = secure_cluster
    status = cli(Settings(), "kafka", "status", "--dir", str(directory))
    assert status.returncode == 0 and f"(SASL_SSL, client settings: {directory / 'client.env'})" in status.stdout
    result = cli(Settings(kafka_dir=directory, data_dir=tmp_path), "topics", "describe")
    assert result.returncode == 2
    assert "listens with SASL_SSL" in result.stderr and f". {directory / 'client.env'}" in result.stderr


def test_an_untrusted_broker_certificate_is_named(secure_cluster, tmp_path: Path):
    _, client_env = secure_cluster
    other_ca = embedded_kafka_tls(tmp_path / "other-ca")
    settings = secure_settings(client_env, tmp_path, ssl_cafile=other_ca)
    result = cli(settings, "topics", "describe", timeout=30)
    assert result.returncode == 1
    assert "is not trusted" in result.stderr and "ssl_cafile" in result.stderr


def embedded_kafka_tls(directory: Path) -> Path:
    from ticketstream.workers.tls import ensure_ca_and_server

    return ensure_ca_and_server(directory).ca


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_a_client_without_tls_is_told_the_broker_speaks_it(secure_cluster, tmp_path: Path, protocol):
    _, client_env = secure_cluster
    extra: dict[str, object] = {"security_protocol": protocol, "connect_timeout_seconds": 3, "ssl_cafile": None}
    if protocol == "PLAINTEXT":
        extra |= {"sasl_mechanism": None, "sasl_username": None, "sasl_password": None}
    result = cli(secure_settings(client_env, tmp_path, **extra), "topics", "describe", timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "cannot reach Kafka" in result.stderr
    assert (
        "answers in TLS: set security_protocol to SASL_SSL" in result.stderr and f"(it is {protocol})" in result.stderr
    )
