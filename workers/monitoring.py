"""`ticketstream monitoring start|stop|status`: Prometheus, Alertmanager and the alert bridge in one command.

Setting the stack up by hand took guesswork: relative `monitoring/...` paths that only worked
from the repository, servers listening on every interface with a wrong external URL, and the
Debian builds' quirks. This starts the three as detached processes against the configured Kafka
(or the embedded broker, started here when none runs), with:

- every path absolute: the configuration files of this checkout, state and logs in one
  directory (default: next to the worker's `data_dir`, i.e. `.ticketstream/monitoring`, resolved
  when started) and a generated `prometheus.yml` naming the rule file by its absolute path;
- every server on loopback (127.0.0.1) with `--web.external-url` set to the address it really
  has, so links in alerts and the UIs point where they should;
- a state file with the pids, ports and URLs, which `stop` and `status` read (stop ends only the
  processes it started, and the embedded broker only if it started it).

Debian's Prometheus 2.42 serves its UI under `/classic/` only, and Debian's Alertmanager has no
web UI: use `amtool` (printed by `start`) or the API.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from ticketstream.settings import Settings, SettingsError
from ticketstream.workers import embedded_kafka
from ticketstream.workers.embedded_kafka import free_ports, pid_alive
from ticketstream.workers.worker import port_free

REPO = Path(__file__).resolve().parents[1]
MONITORING = REPO / "monitoring"
STATE_FILE = "monitoring.json"


@dataclass
class Stack:
    """What `start` started: written to the state file, read by `stop` and `status`."""

    directory: str
    prometheus_url: str
    alertmanager_url: str
    bridge_metrics_url: str
    pids: dict[str, int] = field(default_factory=dict)
    started_kafka: bool = False
    kafka_dir: str = ""
    bootstrap_servers: str = ""

    def urls(self) -> list[tuple[str, str]]:
        return [
            ("Prometheus (classic UI on Debian's build)", f"{self.prometheus_url}/classic/graph"),
            ("Prometheus alerts", f"{self.prometheus_url}/classic/alerts"),
            ("Prometheus targets", f"{self.prometheus_url}/classic/targets"),
            ("Alertmanager API (no web UI in Debian's build)", f"{self.alertmanager_url}/api/v2/alerts"),
            ("Alertmanager with amtool", f"amtool --alertmanager.url={self.alertmanager_url} alert query"),
            ("Alert bridge metrics", self.bridge_metrics_url),
        ]


def default_directory(settings: Settings) -> Path:
    return (Path(settings.data_dir).parent / "monitoring").resolve()


def load(directory: Path) -> Stack | None:
    path = directory / STATE_FILE
    if not path.exists():
        return None
    return Stack(**json.loads(path.read_text()))


def http_ready(url: str) -> bool:
    """The URL answers 200 (a server is up and ready)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _port(preferred: int, out: IO[str], what: str) -> int:
    if port_free("127.0.0.1", preferred):
        return preferred
    port = free_ports(1)[0]
    print(f"port {preferred} is busy; {what} uses {port}", file=out)
    return port


def _binary(*names: str) -> str:
    import shutil

    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise SettingsError(
        f"{names[0]} is not installed: `bash deploy/bootstrap.sh --with-monitoring` installs "
        "Debian's prometheus and prometheus-alertmanager"
    )


def prometheus_config(settings: Settings, alertmanager_port: int, bridge_port: int, rules: Path) -> dict:
    """The shipped `monitoring/prometheus.yml` made concrete: absolute rule path, this stack's
    Alertmanager, the worker's and the bridge's real ports. (JSON is YAML.)"""
    return {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
        "scrape_configs": [
            {"job_name": "ticketstream-workers", "static_configs": [{"targets": [f"127.0.0.1:{settings.web_port}"]}]},
            {"job_name": "ticketstream-alert-bridge", "static_configs": [{"targets": [f"127.0.0.1:{bridge_port}"]}]},
            {"job_name": "ticketstream-channel-clients", "static_configs": [{"targets": ["127.0.0.1:6068"]}]},
        ],
    }


def _spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=REPO,
            start_new_session=True,
        )  # survives the command; stop ends it


def start(
    settings: Settings,
    directory: Path | None = None,
    prometheus_port: int = 9090,
    alertmanager_port: int = 9093,
    bridge_port: int = 6067,
    alertmanager_config: Path | None = None,
    resend_seconds: float = 60.0,
    out: IO[str] = sys.stdout,
    timeout: float = 60.0,
) -> Stack:
    directory = (directory or default_directory(settings)).resolve()
    running = load(directory)
    if running and any(pid_alive(pid) for pid in running.pids.values()):
        raise SettingsError(f"monitoring already runs from {directory} (`ticketstream monitoring stop` first)")
    directory.mkdir(parents=True, exist_ok=True)
    started_kafka = False
    kafka_dir = Path(settings.kafka_dir).resolve()
    if not settings.bootstrap_servers:
        cluster = embedded_kafka.status(kafka_dir)
        if not cluster:
            print(f"no Kafka configured or running: starting the embedded broker in {kafka_dir}", file=out, flush=True)
            cluster = embedded_kafka.start(kafka_dir)
            started_kafka = True
        settings = settings.model_copy(update={"bootstrap_servers": cluster.bootstrap_servers})
    prometheus_port = _port(prometheus_port, out, "Prometheus")
    alertmanager_port = _port(alertmanager_port, out, "Alertmanager")
    bridge_port = _port(bridge_port, out, "the alert bridge's /metrics")
    prom_url, am_url = f"http://127.0.0.1:{prometheus_port}", f"http://127.0.0.1:{alertmanager_port}"
    stack = Stack(
        str(directory),
        prom_url,
        am_url,
        f"http://127.0.0.1:{bridge_port}/metrics",
        started_kafka=started_kafka,
        kafka_dir=str(kafka_dir),
        bootstrap_servers=settings.bootstrap_servers or "",
    )
    config = directory / "prometheus.yml"
    config.write_text(
        json.dumps(
            prometheus_config(
                settings, alertmanager_port, bridge_port, MONITORING / "rules" / "ticketstream.rules.yml"
            ),
            indent=2,
        )
    )
    am_config = (alertmanager_config or MONITORING / "alertmanager.yml").resolve()
    processes = {
        "alertmanager": _spawn(
            [
                _binary("prometheus-alertmanager", "alertmanager"),
                f"--config.file={am_config}",
                f"--storage.path={directory / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{alertmanager_port}",
                f"--web.external-url={am_url}/",
                "--cluster.listen-address=",
            ],
            directory / "alertmanager.log",
        ),
        "prometheus": _spawn(
            [
                _binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
                f"--web.external-url={prom_url}/",
            ],
            directory / "prometheus.log",
        ),
        "alert_bridge": _spawn(
            [
                sys.executable,
                "-m",
                "ticketstream.workers.cli",
                "alert-bridge",
                "--alertmanager",
                am_url,
                "--metrics-port",
                str(bridge_port),
                "--resend-seconds",
                str(resend_seconds),
            ],
            directory / "alert-bridge.log",
            env=settings.as_env(),
        ),
    }
    stack.pids = {name: proc.pid for name, proc in processes.items()}
    (directory / STATE_FILE).write_text(json.dumps(asdict(stack), indent=2))
    checks = {
        "alertmanager": f"{am_url}/-/ready",
        "prometheus": f"{prom_url}/-/ready",
        "alert_bridge": stack.bridge_metrics_url,
    }
    deadline = time.monotonic() + timeout
    waiting = dict(checks)
    while waiting and time.monotonic() < deadline:
        for name in list(waiting):
            if processes[name].poll() is not None:
                stop(directory, out=open(os.devnull, "w"))
                log = directory / f"{name.replace('_', '-')}.log"
                raise SettingsError(
                    f"{name} exited at start; its log {log} ends with:\n" + log.read_text(errors="replace")[-1500:]
                )
            if http_ready(waiting[name]):
                del waiting[name]
        time.sleep(0.2)
    if waiting:
        stop(directory, out=open(os.devnull, "w"))
        raise SettingsError(f"not ready within {timeout:.0f} s: {', '.join(waiting)} (logs in {directory})")
    print(f"monitoring is up (Kafka {settings.bootstrap_servers}; state and logs in {directory}):", file=out)
    for what, url in stack.urls():
        print(f"  {what:48} {url}", file=out)
    print("Stop it with `ticketstream monitoring stop`.", file=out, flush=True)
    return stack


def stop(directory: Path, out: IO[str] = sys.stdout, timeout: float = 20.0) -> bool:
    """End the processes `start` recorded (and the embedded broker if it started it)."""
    stack = load(directory)
    if stack is None:
        print(f"no monitoring state in {directory}", file=out)
        return False
    for pid in stack.pids.values():
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(pid_alive(pid) for pid in stack.pids.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    for name, pid in stack.pids.items():
        if pid_alive(pid):
            print(f"{name} (pid {pid}) did not stop in {timeout:.0f} s: killed", file=out)
            os.kill(pid, signal.SIGKILL)
    if stack.started_kafka:
        embedded_kafka.stop(Path(stack.kafka_dir))
        print("stopped the embedded Kafka broker it had started", file=out)
    (directory / STATE_FILE).unlink()
    print("monitoring stopped", file=out)
    return True


def status(directory: Path, out: IO[str] = sys.stdout) -> bool:
    """Print what runs; True when all three are up and answering."""
    stack = load(directory)
    if stack is None:
        print(f"monitoring is not running (no state in {directory})", file=out)
        return False
    checks = {
        "prometheus": f"{stack.prometheus_url}/-/ready",
        "alertmanager": f"{stack.alertmanager_url}/-/ready",
        "alert_bridge": stack.bridge_metrics_url,
    }
    healthy = True
    for name, pid in stack.pids.items():
        up = pid_alive(pid) and http_ready(checks[name])
        healthy &= up
        print(f"  {name:13} pid {pid:<8} {'up' if up else 'DOWN'}  {checks[name]}", file=out)
    for what, url in stack.urls():
        print(f"  {what:48} {url}", file=out)
    return healthy
