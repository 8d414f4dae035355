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
from workers.embedded_kafka import free_ports


def _binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError(f"{names[0]} is missing: `make test` installs Debian's prometheus packages")


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@contextmanager
def server(args: list[str], ready_url: str, log: Path) -> Iterator[None]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: proc.poll() is not None or _ready(ready_url), 60, f"{Path(args[0]).name} to be ready")
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
    args = [_binary("prometheus-alertmanager", "alertmanager"), f"--config.file={config}",
            f"--storage.path={tmp / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="]
    with server(args, f"{url}/-/ready", tmp / "alertmanager.log"):
        yield url


@contextmanager
def prometheus(config: Path, tmp: Path) -> Iterator[str]:
    port = free_ports(1)[0]
    url = f"http://127.0.0.1:{port}"
    args = [_binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={tmp / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{port}"]
    with server(args, f"{url}/-/ready", tmp / "prometheus.log"):
        yield url
