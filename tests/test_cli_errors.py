"""Every subcommand at the edges a new user meets first: an unreachable broker, a missing file, a
directory that cannot be made. Each ends with one clear line on stderr naming the address or
path and what to change, exit 2 for usage and 1 for runtime failures, and never a traceback."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.factories import encode, received
from tests.harness import REPO
from ticketstream.workers.embedded_kafka import free_ports

DEAD = f"127.0.0.1:{free_ports(1)[0]}"  # a loopback port nobody listens on


def run(args: list[str], stdin: bytes | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    import os

    env = {
        **os.environ,
        "TICKETSTREAM_CONNECT_TIMEOUT_SECONDS": "2",
        "TICKETSTREAM_BROKER_WAIT_SECONDS": "4",
        "TICKETSTREAM_WEB_PORT": str(free_ports(1)[0]),
    }
    env.pop("TICKETSTREAM_BOOTSTRAP_SERVERS", None)
    return subprocess.run(
        [sys.executable, "-m", "ticketstream.workers.cli", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
        text=False,
    )  # type: ignore[return-value]


BROKER_COMMANDS = [
    ["topics", "describe"],
    ["topics", "create"],
    ["incidents", "list"],
    ["lag"],
    ["lag", "--group", "g"],
    ["simulate", "--duration", "1", "--metrics-port", "0"],
    ["worker"],
    ["triage", "corrections"],
]


def assert_one_clear_line(result, exit_code: int, *named: str) -> str:
    err = result.stderr.decode()
    assert "Traceback" not in err, err
    assert result.returncode == exit_code, (result.returncode, err)
    last = err.strip().splitlines()[-1]
    assert last.startswith("ticketstream: ")
    for text in named:
        assert text in last, (text, last)
    return err


@pytest.mark.parametrize("args", BROKER_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_unreachable_broker_is_one_line_naming_the_address(args):
    result = run([*args, "--bootstrap-servers", DEAD])
    err = assert_one_clear_line(result, 1, DEAD, "TICKETSTREAM_BOOTSTRAP_SERVERS")
    if args == ["worker"]:  # the worker retries for a bounded time first, and says so
        assert f"waiting for Kafka at {DEAD}" in err and "broker_wait_seconds" in err


def test_publish_validates_every_line_when_it_cannot_connect(tmp_path: Path):
    lines = tmp_path / "events.jsonl"
    lines.write_bytes(encode(received("T-1")) + b"\n{not json\n" + encode(received("T-2")) + b"\n")
    result = run(["publish", str(lines), "--bootstrap-servers", DEAD])
    err = assert_one_clear_line(result, 1, DEAD)
    assert "line 2: rejected: invalid_json" in err
    assert "2 valid, 1 rejected; nothing was sent" in err


def test_missing_files_and_unmakeable_directories_are_usage_errors(tmp_path: Path):
    missing = str(tmp_path / "nope.jsonl")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cases = [
        (["classify", missing], missing),
        (["replay", missing], missing),
        (["publish", missing, "--bootstrap-servers", DEAD], missing),
        (["triage", "evaluate", missing], missing),
        (["schema", "export", str(blocker / "sub")], str(blocker / "sub")),
        (["--no-such-command"], ""),
    ]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda c: run(c[0]), cases))
    for (args, path), result in zip(cases, results, strict=True):
        if args == ["--no-such-command"]:
            assert result.returncode == 2 and b"Traceback" not in result.stderr
            continue
        assert_one_clear_line(result, 2, path)
