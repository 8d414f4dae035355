"""Safe to expose: /metrics and /health open, the ticket lookup (names and phones) behind a bearer
token, and a worker that refuses to listen beyond loopback without one."""

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from kafka import KafkaProducer

from tests.factories import encode, received
from tests.harness import REPO, isolated_settings, wait_until, worker_process
from ticketstream.settings import Settings, SettingsError, is_loopback, load_settings
from ticketstream.topology import INBOUND
from ticketstream.webauth import check_bearer
from ticketstream.workers.app import Readiness, check_exposure
from ticketstream.workers.embedded_kafka import free_ports
from ticketstream.workers.topics import create_topics

TOKEN = "s3cret-lookup-token-0123456789"


def get(url: str, token: str | None = None) -> tuple[int, dict, dict]:
    """Status, JSON body and headers of a GET (errors included)."""
    request = urllib.request.Request(url, headers={"Authorization": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null"), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null"), dict(err.headers)


@pytest.mark.parametrize(
    "host,loopback",
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("worker-0.ticketstream", False),
    ],
)
def test_loopback_is_only_what_this_machine_alone_reaches(host, loopback):
    assert is_loopback(host) is loopback


def test_bearer_check_says_401_for_no_proof_and_403_for_the_wrong_one():
    assert check_bearer(None, TOKEN).status == 401
    assert check_bearer("", TOKEN).status == 401
    assert check_bearer(f"Basic {TOKEN}", TOKEN).status == 401
    assert check_bearer("Bearer ", TOKEN).status == 401
    assert check_bearer("Bearer not-the-token-at-all", TOKEN).status == 403
    assert check_bearer(f"Bearer {TOKEN}x", TOKEN).status == 403
    assert check_bearer(f"Bearer {TOKEN}", TOKEN) is None
    assert check_bearer(f"bearer  {TOKEN} ", TOKEN) is None


def test_the_token_is_a_secret_of_some_length_and_reaches_child_processes():
    settings = load_settings(environ={"TICKETSTREAM_LOOKUP_TOKEN": TOKEN, "TICKETSTREAM_WEB_HOST": "0.0.0.0"})
    assert TOKEN not in repr(settings) and TOKEN not in settings.model_dump_json()
    assert settings.as_env({})["TICKETSTREAM_LOOKUP_TOKEN"] == TOKEN
    with pytest.raises(SettingsError, match="lookup_token.*16 characters"):
        load_settings(environ={"TICKETSTREAM_LOOKUP_TOKEN": "short"})


def test_exposed_without_a_token_is_refused_and_with_one_allowed():
    with pytest.raises(SettingsError, match="lookup_token"):
        check_exposure(Settings(web_host="0.0.0.0"))
    with pytest.raises(SettingsError, match="lookup_token"):
        check_exposure(Settings(web_host="10.0.0.7"))
    check_exposure(Settings(web_host="0.0.0.0", lookup_token=TOKEN))
    check_exposure(Settings(web_host="127.0.0.1"))


def test_the_worker_refuses_to_start_beyond_loopback_without_a_token_in_one_line(tmp_path: Path):
    """Before any Kafka contact: the bootstrap address points nowhere and is never dialled."""
    env = Settings(bootstrap_servers=f"127.0.0.1:{free_ports(1)[0]}", web_host="0.0.0.0", data_dir=tmp_path).as_env()
    env.pop("TICKETSTREAM_LOOKUP_TOKEN", None)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "ticketstream.workers.cli", "worker"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "lookup_token" in lines[0] and "0.0.0.0" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 30


def test_readiness_waits_for_recovery_and_drops_during_a_rebalance():
    app = SimpleNamespace(rebalancing=False, in_recovery=False)
    readiness = Readiness(app)  # type: ignore[arg-type]
    assert readiness.state() == "recovering"
    readiness.recovered = True
    assert readiness.state() == "ready"
    app.rebalancing = True
    assert readiness.state() == "rebalancing"
    app.rebalancing, app.in_recovery = False, True
    assert readiness.state() == "rebalancing"


@pytest.mark.integration
def test_two_workers_guard_the_lookup_and_forward_the_token_to_the_owner(bootstrap, tmp_path: Path):
    """Every ticket asked of worker A (8 tickets over 4 partitions shared by two workers: those B
    owns are forwarded with the caller's header): 401 without a token, 403 with a wrong one, 200
    with the right one; /metrics and /health need none."""
    first = isolated_settings(bootstrap, tmp_path, partitions=4, lookup_token=TOKEN)
    second = first.model_copy(update={"web_port": free_ports(1)[0], "data_dir": tmp_path / "w2"})
    create_topics(first)
    producer = KafkaProducer(bootstrap_servers=first.bootstrap_servers, acks="all", linger_ms=0)
    tickets = [f"EXP-{n}" for n in range(8)]
    for ticket in tickets:
        producer.send(
            first.topic(INBOUND),
            key=ticket.encode(),
            value=encode(received(ticket, occurred_at=datetime.now(UTC).isoformat(), content="网速有点慢")),
        )
    producer.flush()
    producer.close()
    base_a, base_b = f"http://127.0.0.1:{first.web_port}", f"http://127.0.0.1:{second.web_port}"
    with worker_process(first, tmp_path / "a.log"), worker_process(second, tmp_path / "b.log"):

        def both_ready() -> bool:
            return get(f"{base_a}/health")[0] == 200 and get(f"{base_b}/health")[0] == 200

        wait_until(both_ready, 90, "both workers ready after their rebalance")
        assert get(f"{base_a}/health")[1]["status"] == "ready"

        def all_served() -> bool:
            return all(get(f"{base_a}/tickets/{t}", f"Bearer {TOKEN}")[0] == 200 for t in tickets)

        wait_until(all_served, 90, "every ticket served through worker A with the token", interval=1.0)
        with urllib.request.urlopen(f"{base_b}/metrics", timeout=5) as resp:
            assert resp.status == 200 and b"ticketstream_" in resp.read()
        for ticket in tickets:
            status, body, headers = get(f"{base_a}/tickets/{ticket}")
            assert status == 401 and "customer" not in json.dumps(body)
            assert headers.get("WWW-Authenticate", "").startswith("Bearer")
            status, body, _ = get(f"{base_a}/tickets/{ticket}", "Bearer wrong-token-wrong-token")
            assert status == 403 and "customer" not in json.dumps(body)
            status, body, _ = get(f"{base_a}/tickets/{ticket}", f"Bearer {TOKEN}")
            assert status == 200 and body["ticket_id"] == ticket
        # The partitions are shared: worker B answers the same with the token.
        assert get(f"{base_b}/tickets/{tickets[0]}", f"Bearer {TOKEN}")[0] == 200
