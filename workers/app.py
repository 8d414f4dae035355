"""The Faust application of a ticketstream worker: configuration, agents, web pages.

A worker is one member of the Kafka consumer group named by `app_id`. Scaling out is starting
more workers with the same settings: Kafka assigns each a share of the partitions and Faust
moves the table state with them. Nothing here is home-made distribution.
"""

from __future__ import annotations

import ssl
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams import breaches, incidents, intake, tickets, triage
from streams.deadletters import DeadLetters
from streams.triage import TriageOutputs
from workers import metrics
from ticketstream.calendar import WorkCalendar, load_overrides
from ticketstream.classify import Classifier
from ticketstream.classify import load_rules as load_classifier_rules
from ticketstream.grading import Grader
from ticketstream.incidents import Detector
from ticketstream.incidents import load_policy as load_incident_policy
from ticketstream.grading import load_rules as load_grading_rules
from ticketstream.routing import Router
from ticketstream.routing import load_table as load_routing_table
from ticketstream.settings import Settings
from ticketstream.sla import SlaEngine
from ticketstream.sla_policy import load_policy
from ticketstream.triage import TriageEngine
from ticketstream.triage_model import load_model


def _credentials(settings: Settings) -> Any:
    protocol = settings.security_protocol
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)
        if settings.ssl_certfile:
            context.load_cert_chain(str(settings.ssl_certfile), str(settings.ssl_keyfile) if settings.ssl_keyfile else None)
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else None,
            mechanism=settings.sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def triage_engine(settings: Settings) -> TriageEngine:
    """The triage engine with the operator's rule files (or the shipped ones); invalid files stop
    the start-up with the exact problem (PolicyError)."""
    model = load_model(settings.triage_model)
    return TriageEngine(
        Classifier(load_classifier_rules(settings.classifier_rules), model),
        Grader(load_grading_rules(settings.grading_rules)),
        Router(load_routing_table(settings.routing_rules)),
        model,
    )


def sla_engine(settings: Settings) -> SlaEngine:
    """The SLA engine with the operator's policy and calendar; a year without calendar data
    counts in ticketstream_calendar_fallbacks_total."""
    calendar = WorkCalendar(load_overrides(settings.calendar),
                            on_fallback=lambda year: metrics.CALENDAR_FALLBACKS.labels(year=str(year)).inc())
    return SlaEngine(load_policy(settings.sla_policy), calendar)


def create_app(settings: Settings) -> faust.App:
    """Build the worker's Faust app with every agent registered."""
    if not settings.bootstrap_servers:
        raise ValueError("bootstrap_servers must be set to build a worker")
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=_credentials(settings),
        store="memory://" if settings.store == "memory" else "rocksdb://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        producer_acks=-1,
        producer_linger_ms=settings.producer_linger_ms,
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
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
    intake.register(app, settings, dead_letters)
    triage.register(app, settings, engine, outputs, dead_letters)
    sla = sla_engine(settings)
    metrics.initialise(list(sla.policy.stages))
    tickets.register(app, settings, engine, sla, outputs, dead_letters)
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
                metrics.CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, highwater - position))

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type, so the exposition type goes in a header.
        return web.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "ok", "app_id": settings.app_id})

    return app
