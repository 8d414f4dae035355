"""`ticketstream alert-bridge`: the `alerts` topic -> Alertmanager's API (POST /api/v2/alerts).

Stream alerts (per ticket, per incident, per team overload) then reach on-call through the same
routes, groups and inhibitions as Prometheus' rule-based alerts. This is the thin shell: Kafka
in, HTTP out, dead letters to `tickets.dlq`, metrics; `ticketstream.oversight.bridge.BridgeCore` decides
(validation, de-duplication, bisection of refused batches, back-off, which offsets may be
committed). Offsets are committed only past records that were delivered or dead-lettered, and
only after the dead letters are on the broker (at-least-once; Alertmanager deduplicates by labels).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from prometheus_client import Counter, Gauge

from ticketstream import intake
from ticketstream.oversight.bridge import OUTCOMES, BridgeCore, DeadAlert, PostResult
from ticketstream.schemas.deadletter import Reason, ReasonCode, Source
from ticketstream.settings import Settings
from ticketstream.topology import ALERTS, DLQ

log = logging.getLogger(__name__)

RECORDS = Counter(
    "ticketstream_bridge_records",
    "Alert records read by the bridge, by outcome (delivered, "
    "dead_lettered, unchanged re-deliveries, superseded by a newer record of the same alert).",
    ["outcome"],
)
DELIVERED = Counter("ticketstream_bridge_delivered", "Alerts Alertmanager accepted, by status.", ["status"])
DEAD_LETTERED = Counter("ticketstream_bridge_dead_lettered", "Alert records dead-lettered, by reason.", ["reason"])
RETRIED = Counter("ticketstream_bridge_retries", "Alerts put back to wait after a failed post (5xx or no answer).")
POSTS = Counter(
    "ticketstream_bridge_posts",
    "Requests to Alertmanager, by result (ok, refused = 4xx, failed = 5xx, unreachable = no answer).",
    ["result"],
)
OLDEST = Gauge(
    "ticketstream_bridge_oldest_undelivered_age_seconds",
    "Age of the oldest alert not yet delivered nor dead-lettered (0: none waits).",
)
PENDING = Gauge("ticketstream_bridge_pending_alerts", "Alerts waiting for delivery.")
ACTIVE = Gauge("ticketstream_bridge_active_alerts", "Firing stream alerts the bridge keeps re-sending.")

DEAD_REASONS = {
    "invalid_alert": ReasonCode.INVALID_ALERT,
    "alert_rejected": ReasonCode.ALERT_REJECTED,
    "alert_undeliverable": ReasonCode.ALERT_UNDELIVERABLE,
}
MAX_PENDING = 20_000
"""Pause reading while this many alerts wait (Alertmanager away): memory stays bounded, Kafka keeps the rest."""

for _outcome in OUTCOMES:
    RECORDS.labels(outcome=_outcome)
for _reason in DEAD_REASONS:
    DEAD_LETTERED.labels(reason=_reason)
for _status in ("firing", "resolved"):
    DELIVERED.labels(status=_status)
for _result in ("ok", "refused", "failed", "unreachable"):
    POSTS.labels(result=_result)


def http_post(url: str, timeout: float = 10.0) -> Any:
    """A `Post` for BridgeCore: POST a JSON list to Alertmanager, the answer as a PostResult."""

    def post(bodies: list[dict[str, Any]]) -> PostResult:
        request = urllib.request.Request(
            url,
            data=json.dumps(bodies, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
                return PostResult(response.status)
        except urllib.error.HTTPError as exc:
            try:
                message = exc.read(500).decode("utf-8", errors="replace").strip()
            except OSError:
                message = ""
            return PostResult(exc.code, message or str(exc.reason))
        except (urllib.error.URLError, OSError) as exc:
            return PostResult(None, str(getattr(exc, "reason", exc)))

    return post


class _Revocations(ConsumerRebalanceListener):
    def __init__(self, bridge: AlertBridge) -> None:
        self.bridge = bridge

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.bridge.commit()
        self.bridge.core.revoke({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: Any) -> None:
        pass


class AlertBridge:
    """Kafka consumer + producer around a BridgeCore; `step()` is one round of the loop."""

    def __init__(
        self, settings: Settings, alertmanager_url: str, resend_seconds: float = 60.0, max_backoff: float = 60.0
    ) -> None:
        self.settings = settings
        self.topic = settings.topic(ALERTS)
        self.url = alertmanager_url.rstrip("/") + "/api/v2/alerts"
        self.core = BridgeCore(http_post(self.url), resend_seconds=resend_seconds, max_backoff=max_backoff)
        servers = settings.bootstrap_servers.split(",")  # type: ignore[union-attr]
        self.consumer = KafkaConsumer(
            bootstrap_servers=servers,
            group_id=f"{settings.app_id}-alert-bridge",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **settings.kafka_client_options(),
        )
        self.consumer.subscribe([self.topic], listener=_Revocations(self))
        self.producer = KafkaProducer(
            bootstrap_servers=servers, acks="all", linger_ms=5, **settings.kafka_client_options()
        )
        self.committed: dict[int, int] = {}
        self.seen = dict.fromkeys(OUTCOMES, 0)
        self.posts_seen = dict(self.core.posts)
        self.status_seen = dict(self.core.delivered_by_status)
        self.retries_seen = 0
        self.paused = False

    def step(self) -> None:
        batch = self.consumer.poll(timeout_ms=500, max_records=1000)
        for records in batch.values():
            for record in records:
                self.core.add(record.partition, record.offset, record.value or b"", record.timestamp / 1000.0)
        now = time.time()
        self.core.deliver(now)
        self.dead_letter(self.core.take_dead())
        self.commit()
        self.flow_control()
        self.update_metrics(now)

    def dead_letter(self, dead: list[DeadAlert]) -> None:
        """Dead letters on `tickets.dlq` (original masked), flushed before any commit."""
        if not dead:
            return
        for item in dead:
            source = Source(topic=self.topic, partition=item.partition, offset=item.offset, key=item.alert_id)
            reason = Reason(code=DEAD_REASONS[item.code], message=item.message)
            record = intake.dead_letter(
                item.raw, reason, source, stage="alert_bridge", mask_original=self.settings.dlq_original == "masked"
            )
            self.producer.send(
                self.settings.topic(DLQ), key=record.id.encode(), value=record.model_dump_json().encode()
            )
            DEAD_LETTERED.labels(reason=item.code).inc()
            log.warning(
                "dead-lettered alert %s (%s:%s): %s: %s",
                item.alert_id or "?",
                item.partition,
                item.offset,
                item.code,
                item.message[:300],
            )
        self.producer.flush(timeout=30)

    def commit(self) -> None:
        offsets = {p: o for p, o in self.core.committable().items() if self.committed.get(p) != o}
        if not offsets:
            return
        self.consumer.commit({TopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
        self.committed.update(offsets)

    def flow_control(self) -> None:
        parts = self.consumer.assignment()
        if len(self.core.pending) > MAX_PENDING and not self.paused:
            self.consumer.pause(*parts)
            self.paused = True
        elif self.paused and len(self.core.pending) < MAX_PENDING // 2:
            self.consumer.resume(*parts)
            self.paused = False

    def update_metrics(self, now: float) -> None:
        for outcome, value in self.core.counts.items():
            RECORDS.labels(outcome=outcome).inc(value - self.seen[outcome])
            self.seen[outcome] = value
        for result, value in self.core.posts.items():
            POSTS.labels(result=result).inc(value - self.posts_seen[result])
            self.posts_seen[result] = value
        for status, value in self.core.delivered_by_status.items():
            DELIVERED.labels(status=status).inc(value - self.status_seen[status])
            self.status_seen[status] = value
        RETRIED.inc(self.core.retries - self.retries_seen)
        self.retries_seen = self.core.retries
        OLDEST.set(self.core.oldest_undelivered_age(now))
        PENDING.set(len(self.core.pending))
        ACTIVE.set(len(self.core.active))

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self.consumer.close()
            self.producer.close(timeout=10)


def run_bridge(
    settings: Settings,
    alertmanager_url: str,
    resend_seconds: float,
    stop: threading.Event | None = None,
    max_backoff: float = 60.0,
) -> None:
    stop = stop or threading.Event()
    bridge = AlertBridge(settings, alertmanager_url, resend_seconds, max_backoff)
    try:
        while not stop.is_set():
            bridge.step()
    finally:
        bridge.close()
