"""Real Prometheus and Alertmanager servers (Debian's packages) for end-to-end tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.harness import wait_until
from ticketstream.workers.embedded_kafka import free_ports
from ticketstream.workers.monitoring import http_ready


def _binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError(f"{names[0]} is missing: `make test` installs Debian's prometheus packages")


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


@contextmanager
def server(args: list[str], ready_url: str, log: Path) -> Iterator[None]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: proc.poll() is not None or http_ready(ready_url), 60, f"{Path(args[0]).name} to be ready")
        assert proc.poll() is None, log.read_text()[-2000:]
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def alertmanager(config: Path, tmp: Path) -> Iterator[str]:
    port = free_ports(1)[0]
    url = f"http://127.0.0.1:{port}"
    args = [
        _binary("prometheus-alertmanager", "alertmanager"),
        f"--config.file={config}",
        f"--storage.path={tmp / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with server(args, f"{url}/-/ready", tmp / "alertmanager.log"):
        yield url


@contextmanager
def prometheus(config: Path, tmp: Path) -> Iterator[str]:
    port = free_ports(1)[0]
    url = f"http://127.0.0.1:{port}"
    args = [
        _binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with server(args, f"{url}/-/ready", tmp / "prometheus.log"):
        yield url


class WebhookReceiver:
    """A loopback HTTP server that records Alertmanager's webhook notifications (one POST per
    notification: a group of alerts) by receiver path."""

    def __init__(self) -> None:
        import http.server
        import threading

        received: list[tuple[str, dict]] = []
        self.received = received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((self.path.strip("/"), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def notifications(self, receiver: str | None = None) -> list[dict]:
        return [body for path, body in list(self.received) if receiver is None or path == receiver]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def alertmanager_config_for_tests(config: Path, webhook_url: str, out: Path, seconds_per_minute: float = 0.1) -> Path:
    """The shipped Alertmanager config with its receivers pointed at `webhook_url` and its
    timings scaled down (each minute becomes `seconds_per_minute` seconds, at least 1 s), so a
    test sees the real routes, groups and inhibitions in seconds instead of minutes."""
    import re

    text = config.read_text().replace("http://127.0.0.1:9099", webhook_url)

    def scale(match: re.Match[str]) -> str:
        value, unit = float(match.group(2)), match.group(3)
        minutes = value / 60 if unit == "s" else value if unit == "m" else value * 60
        return f"{match.group(1)}{max(1, round(minutes * seconds_per_minute))}s"

    text = re.sub(r"((?:group_wait|group_interval|repeat_interval): )(\d+)([smh])", scale, text)
    out.write_text(text)
    return out
