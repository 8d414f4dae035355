"""`ticketstream demo`: the whole pipeline on one machine, watched live in the terminal.

It starts the embedded Kafka broker when no bootstrap server is configured, creates the topics,
starts a worker process, feeds it simulated complaint traffic, prints progress every few
seconds from the output topics and the worker's /metrics, and ends with a summary (on Ctrl-C,
or after --duration seconds).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO

from kafka import KafkaConsumer, TopicPartition

from ticketstream.settings import Settings
from ticketstream.streams.metrics import scrape
from ticketstream.topology import ACCEPTED, DLQ, SLA_EVENTS, TRIAGED
from ticketstream.workers import embedded_kafka
from ticketstream.workers.embedded_kafka import free_ports
from ticketstream.workers.simulator import SimulationReport, run_simulation
from ticketstream.workers.topics import create_topics
from ticketstream.workers.worker import port_free, stop_process

DEMO_POLICY = Path(__file__).resolve().parents[1] / "deploy" / "demo" / "sla_policy.toml"


def start_worker_process(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """Run `ticketstream worker` as a child process with the same settings, logging to a file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "ticketstream.workers.cli", "worker", "--no-create-topics"],
            env=settings.as_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the demo, which then stops the worker in order
        )


class OutputWatcher:
    """Counts what arrives on the output topics from the moment the demo starts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers.split(",") if settings.bootstrap_servers else [],
            enable_auto_commit=False,
            client_id="ticketstream-demo-watch",
            **settings.kafka_client_options(),
        )
        self.names = {
            settings.topic(ACCEPTED): "accepted",
            settings.topic(DLQ): "dlq",
            settings.topic(TRIAGED): "triaged",
            settings.topic(SLA_EVENTS): "sla",
        }
        parts = [TopicPartition(t, p) for t in self.names for p in range(settings.partitions)]
        self.consumer.assign(parts)
        self.consumer.seek_to_end(*parts)
        for tp in parts:
            self.consumer.position(tp)
        self.counts: Counter[str] = Counter()
        self.by_type: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.teams: Counter[str] = Counter()
        self.grades: Counter[str] = Counter()
        self.sla: Counter[str] = Counter()
        self.last_breach = ""

    def poll(self) -> None:
        for tp, records in self.consumer.poll(timeout_ms=200, max_records=5000).items():
            kind = self.names[tp.topic]
            self.counts[kind] += len(records)
            for record in records:
                try:
                    body = json.loads(record.value)
                except ValueError:
                    continue
                if kind == "accepted":
                    self.by_type[body.get("type", "?")] += 1
                elif kind == "sla":
                    self.sla[body.get("kind", "?")] += 1
                    if body.get("kind") == "breach":
                        self.last_breach = f"{body['ticket_id']} {body['stage']} (grade {body['grade']})"
                elif kind == "triaged":
                    if body.get("revision") == 1:
                        self.grades[body["grade"]] += 1
                    self.teams[body["team"]] += 1
                else:
                    self.reasons[body.get("reason", {}).get("code", "?")] += 1

    def close(self) -> None:
        self.consumer.close()


def _print_monitoring(settings: Settings, out: IO[str]) -> None:
    """Where to look: the running monitoring stack's URLs, or the command that starts it."""
    from ticketstream.workers import monitoring

    stack = monitoring.load(monitoring.default_directory(settings))
    if stack is not None:
        print("Monitoring (started by `ticketstream monitoring start`):", file=out)
        for what, url in stack.urls():
            print(f"  {what:48} {url}", file=out)
    else:
        print(
            "Prometheus, Alertmanager and the alert bridge: run `.venv/bin/ticketstream monitoring start` "
            "in another terminal (then Prometheus is at http://127.0.0.1:9090/classic/graph)",
            file=out,
        )
    out.flush()


def run_demo(settings: Settings, duration: float, rate: float, out: IO[str] = sys.stdout) -> int:
    started_kafka = False
    if not settings.bootstrap_servers:
        cluster = embedded_kafka.status(settings.kafka_dir)
        if cluster:
            print(f"Using the running embedded Kafka at {cluster.bootstrap_servers}", file=out, flush=True)
        else:
            print("No Kafka configured: starting the embedded Apache Kafka broker ...", file=out, flush=True)
            cluster = embedded_kafka.start(settings.kafka_dir, progress=lambda m: print(m, file=out, flush=True))
            started_kafka = True
            print(f"Kafka is up at {cluster.bootstrap_servers} (logs in {settings.kafka_dir})", file=out, flush=True)
        settings = settings.model_copy(update={"bootstrap_servers": cluster.bootstrap_servers})
    if not port_free(settings.web_host, settings.web_port):
        port = free_ports(1)[0]
        print(f"Port {settings.web_port} is busy; the demo worker uses {port}", file=out, flush=True)
        settings = settings.model_copy(update={"web_port": port})
    created = create_topics(settings)
    print(f"Topics ready: {len(created)} ({sum(r.created for r in created)} created now)", file=out, flush=True)
    if settings.sla_policy is None:
        # Ticket life runs 500x faster in the demo; so must the SLA targets.
        settings = settings.model_copy(update={"sla_policy": DEMO_POLICY})
        print(f"SLA policy: {DEMO_POLICY} (accelerated for the demo)", file=out, flush=True)
    log_path = Path(settings.data_dir).parent / "demo-worker.log"
    worker = start_worker_process(settings, log_path)
    print(
        f"Worker started (pid {worker.pid}); metrics at http://{settings.web_host}:{settings.web_port}/metrics; "
        f"log in {log_path}",
        file=out,
        flush=True,
    )
    _print_monitoring(settings, out)
    watcher = OutputWatcher(settings)
    stop = threading.Event()
    sim_report: list[SimulationReport] = []
    sim_thread = threading.Thread(
        target=lambda: sim_report.append(run_simulation(settings, rate=rate, duration=duration, stop=stop, drain=5.0)),
        name="simulator",
        daemon=True,
    )
    interrupted = False
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(_sig: int, _frame: object) -> None:
        nonlocal interrupted
        interrupted = True
        stop.set()

    signal.signal(signal.SIGINT, on_sigint)
    t0 = time.monotonic()
    sim_thread.start()
    print(f"Simulating {rate:g} complaints/s for {duration:g}s (Ctrl-C to stop early) ...", file=out, flush=True)
    last = 0.0
    dups = 0.0
    try:
        while True:
            watcher.poll()
            now = time.monotonic() - t0
            if worker.poll() is not None:
                print(f"The worker exited with code {worker.returncode}; see {log_path}", file=out, flush=True)
                break
            if now - last >= 3:
                last = now
                dups = scrape(settings.web_port, "ticketstream_intake_duplicates_total") or dups
                grades = " ".join(f"{g}:{watcher.grades[g]}" for g in ("L1", "L2", "L3", "L4"))
                print(
                    f"[{now:5.0f}s] accepted {watcher.counts['accepted']:>6}  dead-lettered {watcher.counts['dlq']:>4}  "
                    f"duplicates dropped {dups:>4.0f}  triaged {sum(watcher.grades.values()):>5} ({grades})",
                    file=out,
                    flush=True,
                )
                print(
                    "         by team: " + "  ".join(f"{t} {n}" for t, n in watcher.teams.most_common()),
                    file=out,
                    flush=True,
                )
                print(
                    f"         SLA: warnings {watcher.sla['warning']}  breaches {watcher.sla['breach']}  "
                    f"met {watcher.sla['met']}  escalations {watcher.sla['escalated']}"
                    + (f"  (latest breach: {watcher.last_breach})" if watcher.last_breach else ""),
                    file=out,
                    flush=True,
                )
            if stop.is_set() or not sim_thread.is_alive():
                # Let the worker finish what was sent, then stop.
                settle = time.monotonic() + 5
                while time.monotonic() < settle:
                    watcher.poll()
                break
    finally:
        stop.set()
        signal.signal(signal.SIGINT, previous)
        sim_thread.join(timeout=10)
        dups = scrape(settings.web_port, "ticketstream_intake_duplicates_total") or dups
        stop_process(worker)
        watcher.close()
        if started_kafka:
            embedded_kafka.stop(settings.kafka_dir)
    sent = sim_report[0] if sim_report else SimulationReport()
    print("\n=== ticketstream demo summary ===", file=out)
    print(
        f"sent by the simulator:  {sent.total} messages ({', '.join(f'{k} {v}' for k, v in sorted(sent.sent.items()))})",
        file=out,
    )
    print(
        f"accepted by intake:     {watcher.counts['accepted']} events "
        f"({', '.join(f'{k} {v}' for k, v in watcher.by_type.most_common(6))}, ...)",
        file=out,
    )
    print(
        f"dead-lettered:          {watcher.counts['dlq']} ({', '.join(f'{k} {v}' for k, v in watcher.reasons.most_common())})",
        file=out,
    )
    print(f"duplicates dropped:     {dups:.0f}", file=out)
    print(
        f"triaged complaints:     {sum(watcher.grades.values())} by grade "
        f"({', '.join(f'{g} {watcher.grades[g]}' for g in ('L1', 'L2', 'L3', 'L4'))})",
        file=out,
    )
    print(f"routed to team queues:  {', '.join(f'{t} {n}' for t, n in watcher.teams.most_common())}", file=out)
    print(
        f"SLA events:             warnings {watcher.sla['warning']}, breaches {watcher.sla['breach']}, "
        f"met {watcher.sla['met']}, escalations {watcher.sla['escalated']}",
        file=out,
    )
    print("stopped early on Ctrl-C" if interrupted else "completed", file=out, flush=True)
    return 0 if worker.returncode in (0, -signal.SIGTERM, None) else 1
