"""The Faust application of a ticketstream worker: configuration, agents, web pages.

A worker is one member of the Kafka consumer group named by `app_id`. Scaling out is starting
more workers with the same settings: Kafka assigns each a share of the partitions and Faust
moves the table state with them. Nothing here is home-made distribution.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ticketstream.engines import sla_engine, triage_engine
from ticketstream.incidents.detector import Detector
from ticketstream.incidents.detector import load_policy as load_incident_policy
from ticketstream.settings import Settings, SettingsError
from ticketstream.sla.engine import SlaEngine
from ticketstream.streams import breaches, incidents, metrics, tickets
from ticketstream.streams.deadletters import DeadLetters
from ticketstream.streams.emit import Murmur2Partitioner
from ticketstream.streams.triage import Triage, TriageOutputs
from ticketstream.tickets.process import TicketProcess
from ticketstream.workers.consumer import App

log = logging.getLogger(__name__)


def _credentials(settings: Settings) -> Any:
    """Faust's broker credentials, made from the same options as every kafka-python client
    (`Settings.kafka_client_options`), so the worker cannot be configured differently."""
    opts = settings.kafka_client_options()
    if "sasl_mechanism" in opts:
        return faust.SASLCredentials(
            username=opts["sasl_plain_username"],
            password=opts["sasl_plain_password"],
            mechanism=opts["sasl_mechanism"],
            ssl_context=opts.get("ssl_context"),
        )
    if "ssl_context" in opts:
        return faust.SSLCredentials(opts["ssl_context"])
    return None


def _watch_calendar(sla: SlaEngine) -> None:
    """The calendar's horizon as a gauge (an alert fires 45 days before it) and, when this year
    itself has no data, a warning at start: working-day clocks are then Monday-Friday only."""
    calendar = sla.calendar
    today = datetime.now(calendar.tz).date()
    until = calendar.covered_until(today)
    end = datetime.combine(until + timedelta(days=1), datetime.min.time(), calendar.tz)
    metrics.CALENDAR_COVERED_UNTIL.set(end.timestamp())
    if until < today:
        log.warning(
            "no working-calendar data for %s: working-day SLA clocks fall back to Monday-Friday; "
            "add the State Council's schedule to the calendar file (`ticketstream calendar check`)",
            today.year,
        )


def check_exposure(settings: Settings) -> None:
    """Refuse a worker whose web port is reachable beyond loopback with an unguarded ticket lookup.

    GET /tickets/{id} returns the customer's name and phone; a cluster needs the port open for
    Prometheus, so bind beyond loopback only with a lookup token (one line, no traceback)."""
    if settings.web_exposed and settings.lookup_token is None:
        raise SettingsError(
            f"setting 'web_host' is {settings.web_host!r}, beyond loopback, but 'lookup_token' is unset: the ticket "
            "lookup would give customers' names and phones to anyone who reaches the port; set "
            "TICKETSTREAM_LOOKUP_TOKEN (at least 16 characters) or bind 127.0.0.1"
        )


class Readiness:
    """Whether the worker is ready for traffic: it has finished a rebalance and the table recovery
    after it (so the deadline index is rebuilt and lookups are answered from recovered state), and
    no new rebalance is under way. A load balancer or Kubernetes sends nothing to it before."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.recovered = False

    def state(self) -> str:
        if not self.recovered:
            return "recovering"
        if self.app.rebalancing or getattr(self.app, "in_recovery", False):
            return "rebalancing"
        return "ready"


def create_app(settings: Settings) -> faust.App:
    """Build the worker's Faust app with every agent registered."""
    if not settings.bootstrap_servers:
        raise ValueError("bootstrap_servers must be set to build a worker")
    check_exposure(settings)
    app = App(  # Faust's, with a consumer that never commits past a skipped message
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=_credentials(settings),
        store="memory://" if settings.store == "memory" else "rocksdb://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor or 1,  # run_worker decides it from the cluster
        topic_allow_declare=True,
        producer_acks=-1,
        producer_linger_ms=settings.producer_linger_ms,
        producer_partitioner=Murmur2Partitioner(),  # murmur2 as Java's, with the key's hash remembered
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_bind=settings.web_host,
        # What the other workers use to forward a /tickets lookup to this one (the key's owner).
        web_host=settings.web_advertised_host or settings.web_host,
        web_port=settings.web_port,
        autodiscover=False,
        table_standby_replicas=1,
        # A worker that dies leaves the group after this long; its partitions (and their
        # deadlines) move to the survivors. Faust's default of 60 s is too slow for SLA clocks.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        # No leader-only timers here, so no leader topic: Faust creates it after the first join,
        # and its partition count changing 0 -> 1 in the metadata forced a whole-group rebalance
        # five minutes after a cluster's first start (metadata max age).
        topic_disable_leader=True,
    )
    engine = triage_engine(settings)
    dead_letters = DeadLetters(app, settings)
    outputs = TriageOutputs(app, settings)
    sla = sla_engine(
        settings, on_calendar_fallback=lambda year: metrics.CALENDAR_FALLBACKS.labels(year=str(year)).inc()
    )
    metrics.initialise(list(sla.policy.stages))
    _watch_calendar(sla)
    process = TicketProcess(engine, sla)
    triage = Triage(app, settings, process, outputs)
    app.customer_history = triage.replica  # loaded by run_worker before the worker starts
    tickets.register(app, settings, process, outputs, triage, dead_letters)
    breaches.register(app, settings)
    incidents.register(app, settings, Detector(load_incident_policy(settings.incident_policy)))

    @app.timer(interval=10.0)
    async def consumer_lag() -> None:
        """Lag per assigned input partition: the highwater minus this worker's position."""
        consumer = app.consumer
        for tp in consumer.assignment():
            try:
                position = await consumer.position(tp)
                highwater = consumer.highwater(tp)
            except Exception:  # noqa: BLE001 - a partition moving away mid-loop is normal
                continue
            if position is not None and highwater is not None:
                metrics.CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    max(0, highwater - position)
                )

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type, so the exposition type goes in a header.
        return web.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def health(web: Any, request: Any) -> Any:
        """Liveness: the process and its web server answer (it may still be recovering)."""
        return web.json({"status": "ok", "app_id": settings.app_id})

    readiness = Readiness(app)

    @app.on_rebalance_complete.connect
    async def recovered(sender: Any = None, **kwargs: Any) -> None:
        readiness.recovered = True

    @app.page("/health")
    async def ready(web: Any, request: Any) -> Any:
        """Readiness: 200 only after recovery and between rebalances, else 503 with the reason."""
        state = readiness.state()
        return web.json(
            {"status": state, "app_id": settings.app_id, "rebalances": app.rebalancing_count},
            status=200 if state == "ready" else 503,
        )

    return app
