"""The alert bridge's decisions (pure: no Kafka, no HTTP; `workers.alert_bridge` is the shell).

What went wrong before: one invalid alert made Alertmanager answer HTTP 400 for its whole batch,
the bridge re-sent that batch every 30 s for ever, and nothing behind it was delivered or told
anyone. Here every record read ends in exactly one of four outcomes, and a partition's offset
is committed only past records that have one:

- `delivered`: Alertmanager accepted it (2xx);
- `dead_lettered`: it is not a valid alert (`schemas.alerts`), or Alertmanager refused it with a
  4xx when posted alone, or it failed with 5xx alone again and again while other alerts were
  accepted; the reason goes with it to the dead-letter topic;
- `unchanged`: the same id with the same content was delivered before (a re-delivery);
- `superseded`: a newer record with the same id arrived before it was delivered; only the newest
  state of an alert is posted (a late `firing` must never overwrite a `resolved`).

Refusals are isolated by bisection: a 4xx batch is split in halves until the offending alerts
stand alone, so one bad alert costs about 2·log2(batch) requests and the rest are delivered in
the same round. A 5xx answer (Alertmanager is up but failed) is bisected the same way, and the
alerts of a failing half wait with exponential back-off, each on its own clock, so alerts of
other partitions (and newer alerts of the same one) keep flowing. A connection error or timeout
means Alertmanager is not there at all: everything waits (back-off up to `max_backoff`), and
nothing is dead-lettered for it; the age of the oldest undelivered alert grows, which is what
the `AlertsUndelivered` rule watches.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ticketstream.schemas.alerts import Alert, AlertStatus, parse_alert

OUTCOMES = ("delivered", "dead_lettered", "unchanged", "superseded")


@dataclass(frozen=True, slots=True)
class PostResult:
    """Alertmanager's answer to one POST: its HTTP status (None: no answer at all) and message."""

    status: int | None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def refused(self) -> bool:
        return self.status is not None and 400 <= self.status < 500


Post = Callable[[list[dict[str, Any]]], PostResult]


@dataclass(frozen=True, slots=True)
class DeadAlert:
    """A record to dead-letter, with why (`invalid_alert`, `alert_rejected`, `alert_undeliverable`)."""

    partition: int
    offset: int
    raw: bytes
    code: str
    message: str
    alert_id: str | None = None


@dataclass(slots=True)
class Pending:
    partition: int
    offset: int
    raw: bytes
    alert: Alert
    body: dict[str, Any]
    fingerprint: str
    produced_at: float
    attempts: int = 0
    retry_at: float = 0.0
    failing_since: float | None = None


@dataclass
class BridgeCore:
    """Offsets, de-duplication, batching, bisection and back-off of the alert bridge."""

    post: Post
    resend_seconds: float = 60.0
    max_batch: int = 500
    max_backoff: float = 60.0
    dead_letter_after: int = 8
    """A single alert failing with 5xx this many times, while Alertmanager accepts others, is dead-lettered."""
    max_age_seconds: float = 86_400.0
    """Firing alerts older than this are no longer re-sent (Alertmanager then resolves them)."""

    pending: dict[str, Pending] = field(default_factory=dict)
    """Alert id -> its newest undelivered record."""
    undone: dict[int, set[int]] = field(default_factory=dict)
    """Partition -> offsets read and not yet delivered or dead-lettered."""
    next_offset: dict[int, int] = field(default_factory=dict)
    delivered: dict[str, str] = field(default_factory=dict)
    """Alert id -> fingerprint of the content Alertmanager accepted last."""
    active: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    """Firing alert id -> (first delivered, body): re-sent every `resend_seconds`."""
    dead: list[DeadAlert] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    posts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "refused": 0, "failed": 0, "unreachable": 0})
    delivered_by_status: dict[str, int] = field(default_factory=lambda: {"firing": 0, "resolved": 0})
    retries: int = 0
    unreachable_until: float = 0.0
    unreachable_attempts: int = 0
    last_success: float = 0.0
    last_resend: float = 0.0

    # -- input ----------------------------------------------------------------------------------
    def add(self, partition: int, offset: int, raw: bytes, produced_at: float) -> None:
        """One record read from the `alerts` topic."""
        self.undone.setdefault(partition, set()).add(offset)
        self.next_offset[partition] = max(self.next_offset.get(partition, 0), offset + 1)
        try:
            alert = parse_alert(raw)
        except (ValidationError, ValueError) as exc:
            self._dead(partition, offset, raw, "invalid_alert", _reason(exc), _id_of(raw))
            return
        body = alert.to_alertmanager()
        fingerprint = json.dumps(body, sort_keys=True, ensure_ascii=False)
        older = self.pending.get(alert.id)
        if older is not None:
            self._finish(older.partition, older.offset, "superseded")
        if self.delivered.get(alert.id) == fingerprint:
            self.pending.pop(alert.id, None)
            self._finish(partition, offset, "unchanged")
            return
        self.pending[alert.id] = Pending(partition, offset, raw, alert, body, fingerprint, produced_at)

    def revoke(self, partitions: set[int]) -> None:
        """Partitions taken away by a rebalance: their undelivered records are the next owner's."""
        for alert_id, item in list(self.pending.items()):
            if item.partition in partitions:
                del self.pending[alert_id]
        for partition in partitions:
            self.undone.pop(partition, None)
            self.next_offset.pop(partition, None)

    # -- output ---------------------------------------------------------------------------------
    def deliver(self, now: float) -> None:
        """Post what is due: new and retrying alerts (bisected on refusals) and the re-sends."""
        if now < self.unreachable_until:
            return
        due = sorted((p for p in self.pending.values() if p.retry_at <= now), key=lambda p: (p.produced_at, p.offset))
        for start in range(0, len(due), self.max_batch):
            if not self._send(due[start : start + self.max_batch], now):
                return
        if not self.last_resend:
            self.last_resend = now
        if now - self.last_resend >= self.resend_seconds:
            self.last_resend = now
            expired = [k for k, (since, _) in self.active.items() if now - since > self.max_age_seconds]
            for key in expired:
                del self.active[key]
            bodies = [body for _, body in self.active.values()]
            for start in range(0, len(bodies), self.max_batch):
                result = self.post(bodies[start : start + self.max_batch])
                self._count_post(result)
                if not result.ok:  # a re-send is only a refresh: try again in a few seconds
                    self.last_resend = now - self.resend_seconds + min(5.0, self.resend_seconds)
                    break

    def _send(self, items: list[Pending], now: float) -> bool:
        """Post `items`; False when Alertmanager could not be reached (stop this round)."""
        result = self.post([p.body for p in items])
        self._count_post(result)
        if result.ok:
            self.last_success = now
            self.unreachable_attempts = 0
            for item in items:
                self._delivered(item, now)
            return True
        if result.status is None:
            self.unreachable_attempts += 1
            self.retries += len(items)
            self.unreachable_until = now + min(self.max_backoff, 2.0 ** (self.unreachable_attempts - 1))
            return False
        if len(items) > 1:
            half = len(items) // 2
            return self._send(items[:half], now) and self._send(items[half:], now)
        item = items[0]
        if result.refused:
            self._drop(item, "alert_rejected", f"Alertmanager refused it: HTTP {result.status}: {result.message}")
            return True
        item.attempts += 1
        item.failing_since = item.failing_since or now
        if item.attempts >= self.dead_letter_after and self.last_success > item.failing_since:
            self._drop(
                item,
                "alert_undeliverable",
                f"Alertmanager failed on it {item.attempts} times (last: HTTP {result.status}: "
                f"{result.message}) while it accepted other alerts",
            )
            return True
        self.retries += 1
        item.retry_at = now + min(self.max_backoff, 2.0 ** (item.attempts - 1))
        return True

    def _delivered(self, item: Pending, now: float) -> None:
        self.pending.pop(item.alert.id, None)
        self.delivered[item.alert.id] = item.fingerprint
        self.delivered_by_status[item.alert.status.value] += 1
        if item.alert.status is AlertStatus.FIRING:
            since = self.active.get(item.alert.id, (now, None))[0]
            self.active[item.alert.id] = (since, item.body)
        else:
            self.active.pop(item.alert.id, None)
        self._finish(item.partition, item.offset, "delivered")

    def _drop(self, item: Pending, code: str, message: str) -> None:
        self.pending.pop(item.alert.id, None)
        self._dead(item.partition, item.offset, item.raw, code, message, item.alert.id)

    def _dead(self, partition: int, offset: int, raw: bytes, code: str, message: str, alert_id: str | None) -> None:
        self.dead.append(DeadAlert(partition, offset, raw, code, message[:1000], alert_id))
        self._finish(partition, offset, "dead_lettered")

    def _finish(self, partition: int, offset: int, outcome: str) -> None:
        self.undone.get(partition, set()).discard(offset)
        self.counts[outcome] += 1

    def _count_post(self, result: PostResult) -> None:
        kind = (
            "ok" if result.ok else "refused" if result.refused else "unreachable" if result.status is None else "failed"
        )
        self.posts[kind] += 1

    # -- bookkeeping ----------------------------------------------------------------------------
    def take_dead(self) -> list[DeadAlert]:
        """Records to dead-letter now; the shell sends them before it commits."""
        dead, self.dead = self.dead, []
        return dead

    def committable(self) -> dict[int, int]:
        """Partition -> the offset to commit: the first record without an outcome (or the end)."""
        return {p: min(self.undone.get(p) or {end}) for p, end in self.next_offset.items()}

    def oldest_undelivered_age(self, now: float) -> float:
        """Seconds since the oldest undelivered alert was produced (0 when none waits)."""
        return max(0.0, now - min(p.produced_at for p in self.pending.values())) if self.pending else 0.0


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'alert'}: {e['msg']}" for e in exc.errors()[:5])
    return str(exc)


def _id_of(raw: bytes) -> str | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    alert_id = value.get("id") if isinstance(value, dict) else None
    return alert_id[:200] if isinstance(alert_id, str) else None
