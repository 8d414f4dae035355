"""`ticketstream alert-bridge`: the `alerts` topic -> Alertmanager's API (POST /api/v2/alerts).

Stream alerts (per ticket, per incident, per team overload) then reach on-call through the same
routes, groups and inhibitions as Prometheus' rule-based alerts. The bridge posts each new or
changed alert once (deduplicated by its deterministic id and content), re-sends every firing
alert well before Alertmanager's `resolve_timeout` (Alertmanager resolves an alert nobody
re-sends), stops re-sending alerts older than `max_age`, and commits its Kafka offsets only
after Alertmanager accepted a batch (at-least-once; Alertmanager deduplicates by labels).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from kafka import KafkaConsumer
from prometheus_client import Counter, Gauge

from ticketstream.alerts import to_alertmanager
from ticketstream.settings import Settings
from ticketstream.topology import ALERTS

log = logging.getLogger(__name__)

POSTS = Counter("ticketstream_bridge_posts", "Batches posted to Alertmanager, by result.", ["result"])
FORWARDED = Counter("ticketstream_bridge_alerts", "Alerts forwarded to Alertmanager, by status.", ["status"])
ACTIVE = Gauge("ticketstream_bridge_active_alerts", "Firing stream alerts the bridge keeps re-sending.")


class AlertBridge:
    def __init__(self, alertmanager_url: str, resend_seconds: float = 60.0, max_age_seconds: float = 86_400.0) -> None:
        self.url = alertmanager_url.rstrip("/") + "/api/v2/alerts"
        self.resend_seconds = resend_seconds
        self.max_age_seconds = max_age_seconds
        self.active: dict[str, tuple[float, dict[str, Any]]] = {}
        self.posted: dict[str, str] = {}

    def accept(self, record: dict[str, Any], now: float) -> dict[str, Any] | None:
        """The Alertmanager body to post for one `alerts` record, or None if it adds nothing."""
        body = to_alertmanager(record)
        fingerprint = json.dumps(body, sort_keys=True, ensure_ascii=False)
        if self.posted.get(record["id"]) == fingerprint:
            return None
        self.posted[record["id"]] = fingerprint
        if record.get("status") == "resolved":
            self.active.pop(record["id"], None)
        else:
            self.active[record["id"]] = (now, body)
        ACTIVE.set(len(self.active))
        FORWARDED.labels(status=record.get("status", "firing")).inc()
        return body

    def resends(self, now: float) -> list[dict[str, Any]]:
        """Firing alerts to post again (and forget the ones past max_age: Alertmanager resolves them)."""
        expired = [k for k, (since, _) in self.active.items() if now - since > self.max_age_seconds]
        for key in expired:
            del self.active[key]
        ACTIVE.set(len(self.active))
        return [body for _, body in self.active.values()]

    def post(self, bodies: list[dict[str, Any]]) -> None:
        """POST a batch; raises on failure so the caller retries and does not commit."""
        if not bodies:
            return
        request = urllib.request.Request(self.url, data=json.dumps(bodies, ensure_ascii=False).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except (urllib.error.URLError, OSError):
            POSTS.labels(result="error").inc()
            raise
        POSTS.labels(result="ok").inc()


def run_bridge(settings: Settings, alertmanager_url: str, resend_seconds: float,
               stop: threading.Event | None = None) -> None:
    stop = stop or threading.Event()
    bridge = AlertBridge(alertmanager_url, resend_seconds)
    consumer = KafkaConsumer(
        settings.topic(ALERTS), bootstrap_servers=settings.bootstrap_servers.split(","),  # type: ignore[union-attr]
        group_id=f"{settings.app_id}-alert-bridge", enable_auto_commit=False, auto_offset_reset="earliest",
        **settings.kafka_client_options(),
    )
    last_resend = time.monotonic()
    backoff = 1.0
    try:
        while not stop.is_set():
            batch = consumer.poll(timeout_ms=1000, max_records=500)
            now = time.time()
            bodies = []
            for records in batch.values():
                for record in records:
                    try:
                        body = bridge.accept(json.loads(record.value), now)
                    except (ValueError, KeyError, TypeError):
                        log.warning("skipping a malformed alert record at %s:%s", record.partition, record.offset)
                        continue
                    if body is not None:
                        bodies.append(body)
            if time.monotonic() - last_resend >= resend_seconds:
                bodies.extend(bridge.resends(now))
                last_resend = time.monotonic()
            while bodies and not stop.is_set():
                try:
                    bridge.post(bodies)
                    backoff = 1.0
                    break
                except (urllib.error.URLError, OSError) as exc:
                    log.warning("Alertmanager at %s refused the batch (%s); retrying in %.0f s", bridge.url, exc, backoff)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
            if batch:
                consumer.commit()
    finally:
        consumer.close()
