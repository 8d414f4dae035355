"""Mass-incident detection (突發事件, 高發區域/時段; DOMAIN §7, 003 §5.2.3, §2.2.1).

Many complaints of one kind in one place in a short time are one outage, not many problems.
Per (city, top-level category) the detector counts complaints in a sliding window (default 10
minutes, moving in 1-minute steps) by the complaints' own time, keeps an exponentially weighted
baseline of the window count over past steps, and opens an incident when the current count
passes both an absolute floor (20) and a multiple (5x) of the baseline. Tickets of the window
before the opening and every matching ticket after it are linked to the incident; it closes
after a quiet period without matching complaints.

This module is the arithmetic only (pure, deterministic); `streams.incidents` feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ticketstream.policyfile import load_model

RECENT_LIMIT = 2000
"""Tickets remembered per key for linking when an incident opens (a window's worth in a burst)."""


class IncidentPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_seconds: int = Field(600, ge=60)
    step_seconds: int = Field(60, ge=1)
    floor: int = Field(20, ge=1)
    multiple: float = Field(5.0, ge=1.0)
    baseline_alpha: float = Field(0.1, gt=0, le=1)
    """Weight of the newest completed step in the baseline (an EWMA of the window count)."""
    min_baseline: float = Field(1.0, ge=0)
    quiet_seconds: int = Field(1800, ge=1)
    update_every: int = Field(20, ge=1)
    """Publish an `update` record every this many linked tickets."""


def load_policy(path: str | Path | None = None) -> IncidentPolicy:
    return load_model(IncidentPolicy, path, "incidents.toml")


@dataclass
class KeyState:
    """Detection state of one (city, top-level category)."""

    key: str
    buckets: dict[int, int] = field(default_factory=dict)
    last_step: int | None = None
    baseline: float = 0.0
    recent: list[tuple[str, float]] = field(default_factory=list)
    incident: dict[str, Any] | None = None
    closed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.key, "b": {str(s): c for s, c in self.buckets.items()}, "l": self.last_step,
                "bl": self.baseline, "r": [list(r) for r in self.recent], "i": self.incident, "c": self.closed[-20:]}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> KeyState:
        return cls(raw["k"], {int(s): c for s, c in raw.get("b", {}).items()}, raw.get("l"), raw.get("bl", 0.0),
                   [tuple(r) for r in raw.get("r", [])], raw.get("i"), list(raw.get("c", [])))


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """An open, update or close record of the `incidents` topic."""

    id: str
    action: str
    city: str
    category: str
    count: int
    baseline: float
    first_at: float
    latest_at: float
    opened_at: float
    closed_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "action": self.action, "city": self.city, "category": self.category,
                "count": self.count, "baseline": round(self.baseline, 3), "first_at": self.first_at,
                "latest_at": self.latest_at, "opened_at": self.opened_at, "closed_at": self.closed_at}


@dataclass
class Outcome:
    records: list[IncidentRecord] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    """(ticket id, incident id) to link."""


def key_of(city: str, top_level: str) -> str:
    return f"{city}|{top_level}"


class Detector:
    def __init__(self, policy: IncidentPolicy | None = None) -> None:
        self.policy = policy or load_policy()
        self.window_steps = max(1, self.policy.window_seconds // self.policy.step_seconds)

    def window_count(self, state: KeyState, step: int) -> int:
        return sum(c for s, c in state.buckets.items() if step - self.window_steps < s <= step)

    def _roll(self, state: KeyState, step: int) -> None:
        """Fold completed steps into the baseline (each step's window count, EWMA)."""
        if state.last_step is None:
            state.last_step = step
            return
        alpha = self.policy.baseline_alpha
        # At most one window of steps matters: older ones contribute zeros, folded in one go.
        first = max(state.last_step, step - self.window_steps - 1)
        skipped = first - state.last_step
        if skipped > 0:
            state.baseline *= (1 - alpha) ** skipped
        for s in range(first, step):
            state.baseline = alpha * self.window_count(state, s) + (1 - alpha) * state.baseline
        state.last_step = step
        horizon = step - 2 * self.window_steps
        state.buckets = {s: c for s, c in state.buckets.items() if s > horizon}

    def _record(self, state: KeyState, action: str, closed_at: float | None = None) -> IncidentRecord:
        inc = state.incident or {}
        city, category = state.key.split("|", 1)
        return IncidentRecord(inc["id"], action, city, category, inc["count"], inc["baseline"], inc["first_at"],
                              inc["latest_at"], inc["opened_at"], closed_at)

    def complaint(self, state: KeyState, ticket_id: str, at: float) -> Outcome:
        """A complaint of this key at event time `at`: count it, maybe open an incident, link it."""
        policy, out = self.policy, Outcome()
        step = int(at // policy.step_seconds)
        if state.last_step is not None and step < state.last_step - self.window_steps:
            return out  # older than the window: too late to count
        if state.last_step is None or step > state.last_step:
            self._roll(state, step)
        state.buckets[step] = state.buckets.get(step, 0) + 1
        inc = state.incident
        if inc is None:
            # Remembered only while no incident is open: they are linked when one opens.
            if all(t != ticket_id for t, _ in state.recent):
                state.recent.append((ticket_id, at))
            horizon = at - policy.window_seconds
            if state.recent[0][1] < horizon or len(state.recent) > RECENT_LIMIT:
                state.recent = [r for r in state.recent if r[1] >= horizon][-RECENT_LIMIT:]
        if inc is not None:
            # Linking is idempotent downstream (a ticket keeps one incident id), so no list of
            # linked tickets is kept here: the state stays small however large the outage.
            inc["count"] += 1
            inc["latest_at"] = max(inc["latest_at"], at)
            out.links.append((ticket_id, inc["id"]))
            if inc["count"] % policy.update_every == 0:
                out.records.append(self._record(state, "update"))
            return out
        count = self.window_count(state, max(step, state.last_step or step))
        threshold = max(policy.floor, policy.multiple * max(state.baseline, policy.min_baseline))
        if count >= threshold:
            window_start = (max(step, state.last_step or step) - self.window_steps + 1) * policy.step_seconds
            incident_id = f"INC:{state.key}:{window_start}"
            if incident_id in state.closed:
                incident_id = f"{incident_id}:{step}"
            linked = [t for t, _ in state.recent]
            state.incident = {"id": incident_id, "count": len(linked), "baseline": state.baseline,
                              "first_at": min(a for _, a in state.recent), "latest_at": at, "opened_at": at}
            out.records.append(self._record(state, "open"))
            out.links.extend((t, incident_id) for t in linked)
            state.recent = []
        return out

    def tick(self, state: KeyState, now: float) -> Outcome:
        """Close the key's incident after the quiet period (called by a timer)."""
        out = Outcome()
        inc = state.incident
        if inc is not None and now - inc["latest_at"] >= self.policy.quiet_seconds:
            out.records.append(self._record(state, "close", closed_at=inc["latest_at"] + self.policy.quiet_seconds))
            state.closed = [*state.closed, inc["id"]][-20:]
            state.incident = None
        return out
