"""Mass-incident detection (突發事件, 高發區域/時段; DOMAIN §7, 003 §5.2.3, §2.2.1).

Many complaints of one kind in one place in a short time are one outage, not many problems.
Per city the detector counts complaints of each top-level category in a sliding window (default
10 minutes, moving in 1-minute steps) by the complaints' own time, keeps an exponentially
weighted baseline of each category's window count, and opens an incident for (city, category)
when the current count reaches all of:

- the absolute floor (20),
- a multiple (5x) of the category's baseline in that city,
- a minimum share (50 %) of all the city's complaints in the window.

Why each condition. The floor keeps a handful of complaints from being an incident. The baseline
multiple is DOMAIN §7's rule. The share is what tells an outage (one kind of complaint swamps the
city) from more traffic of every kind (a morning ramp-up, a campaign, a bigger day): the latter
raises every category together, and before the share existed it opened incidents everywhere.
A baseline must be learnt before it can be trusted: a new city (a fresh deployment, a city never
seen) is watched for `warmup_seconds` (default an hour) before it is judged on its own baseline,
which starts as the mean window count of the warm-up. During the warm-up it is judged only
against a configured prior (`priors`, complaints per window per "city|category", "city|*" or
"*|category", or `default_prior`); without one it is not judged. Before the warm-up existed a
cold start judged the first window against the floor alone, and steady traffic in a big city
crossed it (35 false incidents in 12 minutes at 5 complaints/s). The baseline does not learn
while the category's incident is open, so an outage does not raise its own bar.

The state lives in the worker's table (and its changelog), so a restart does not warm up again.
Tickets of the window before the opening and every matching ticket after it are linked to the
incident; it closes after a quiet period without matching complaints.

This module is the arithmetic only (pure, deterministic); `streams.incidents` feeds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ticketstream.policyfile import load_model

RECENT_DUPLICATE_LOOKBACK = 32
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
    min_share: float = Field(0.5, ge=0, le=1)
    """The category's share of all the city's complaints in the window needed to open an incident."""
    warmup_seconds: int = Field(3600, ge=0)
    """How long a city is watched before its categories are judged on their own baselines."""
    default_prior: float | None = Field(None, ge=0)
    """Expected complaints per window of any city/category during its warm-up (None: not judged then)."""
    priors: dict[str, float] = Field(default_factory=dict)
    """Expected complaints per window during the warm-up by "city|category", "city|*" or "*|category"."""

    def prior(self, city: str, category: str) -> float | None:
        for key in (f"{city}|{category}", f"{city}|*", f"*|{category}"):
            if key in self.priors:
                return self.priors[key]
        return self.default_prior


def load_policy(path: str | Path | None = None) -> IncidentPolicy:
    return load_model(IncidentPolicy, path, "incidents.toml")


@dataclass
class CategoryState:
    """Detection state of one top-level category in one city."""

    buckets: dict[int, int] = field(default_factory=dict)
    baseline: float = 0.0
    seen: int = 0
    """Complaints counted during the city's warm-up (its mean window count becomes the baseline)."""
    recent: list[list[Any]] = field(default_factory=list)
    """[ticket id, time] of the window's tickets while no incident is open (linked when one opens).
    Kept as the JSON lists they are stored as: this state is decoded and encoded for every batch
    of the city's complaints (`streams.incidents`)."""
    incident: dict[str, Any] | None = None
    closed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "b": {str(s): c for s, c in self.buckets.items()},
            "bl": self.baseline,
            "n": self.seen,
            "r": self.recent,
            "i": self.incident,
            "c": self.closed[-20:],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CategoryState:
        """A state of its own: what the detector changes in place (the open incident's counts,
        the recent tickets) is copied, since a memory store hands back the stored value itself
        and a state stepped but not saved (a batch the detector failed on) must leave it as it was."""
        incident = raw.get("i")
        return cls(
            {int(s): c for s, c in raw.get("b", {}).items()},
            raw.get("bl", 0.0),
            raw.get("n", 0),
            list(raw.get("r", [])),
            dict(incident) if incident else None,
            list(raw.get("c", [])),
        )


@dataclass
class KeyState:
    """Detection state of one city (the key of `incidents.by_key`): every category's counts, so
    that a category's share of the city's complaints can be judged."""

    key: str
    first_step: int | None = None
    last_step: int | None = None
    categories: dict[str, CategoryState] = field(default_factory=dict)

    @property
    def city(self) -> str:
        return self.key.partition("|")[0]

    @property
    def incident(self) -> dict[str, Any] | None:
        """An open incident of any category (the stream keeps such keys ticking)."""
        return next((c.incident for c in self.categories.values() if c.incident), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.key,
            "v": 2,
            "f": self.first_step,
            "l": self.last_step,
            "c": {name: c.to_dict() for name, c in self.categories.items()},
            "i": bool(self.incident),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> KeyState:
        if raw.get("v") != 2:  # the per-(city, category) state of earlier releases: start again
            return cls(raw["k"])
        return cls(
            raw["k"],
            raw.get("f"),
            raw.get("l"),
            {name: CategoryState.from_dict(c) for name, c in raw.get("c", {}).items()},
        )


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
        return {
            "id": self.id,
            "action": self.action,
            "city": self.city,
            "category": self.category,
            "count": self.count,
            "baseline": round(self.baseline, 3),
            "first_at": self.first_at,
            "latest_at": self.latest_at,
            "opened_at": self.opened_at,
            "closed_at": self.closed_at,
        }


@dataclass
class Outcome:
    records: list[IncidentRecord] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    """(ticket id, incident id) to link."""


def key_of(city: str, top_level: str) -> str:
    """The name of a (city, category) pair in incident ids and alerts."""
    return f"{city}|{top_level}"


def by_key_entry(top_level: str, ticket_id: str, at: float) -> dict[str, Any]:
    """A new complaint as incident detection counts it: its ticket, its time, its category."""
    return {"ticket_id": ticket_id, "at": at, "category": top_level}


def by_key_record(city: str, entries: list[dict[str, Any]]) -> tuple[bytes, bytes]:
    """The `incidents.by_key` record of a city's new complaints (`by_key_entry`, in the order
    triaged): keyed by city (all of a city's categories on one partition, for the share). One
    record carries every complaint of the city that triage took since its last one
    (`streams.incident_feed`), not one record per complaint. A record with a single complaint's
    fields at the top level (the older form) and a `{"tick": ...}` are read as well."""
    return city.encode(), json.dumps({"complaints": entries}, ensure_ascii=False).encode()


class Detector:
    def __init__(self, policy: IncidentPolicy | None = None) -> None:
        self.policy = policy or load_policy()
        self.window_steps = max(1, self.policy.window_seconds // self.policy.step_seconds)
        self.warmup_steps = -(-self.policy.warmup_seconds // self.policy.step_seconds)

    def window_count(self, state: CategoryState, step: int) -> int:
        return sum(c for s, c in state.buckets.items() if step - self.window_steps < s <= step)

    def warming(self, state: KeyState, step: int) -> bool:
        return state.first_step is None or step - state.first_step < self.warmup_steps

    def _roll(self, state: KeyState, step: int) -> None:
        """Fold completed steps into every category's baseline: an EWMA of the window count one
        whole window earlier. The delay matters: a baseline that took in the current window
        would chase an outage as it grows (at α 0.1 a rise to 7x over ten minutes was never
        called, the baseline kept a third of the way behind)."""
        if state.last_step is None:
            state.first_step = state.last_step = step
            return
        alpha, w = self.policy.baseline_alpha, self.window_steps
        horizon = step - 2 * w
        warm_end = state.first_step + self.warmup_steps  # type: ignore[operator]
        for cat in state.categories.values():
            if self.warmup_steps and state.last_step < warm_end <= step:
                # The warm-up's mean window count starts the baseline (an EWMA from zero
                # would take dozens of steps to reach the level, judging too low meanwhile).
                cat.baseline = cat.seen * w / self.warmup_steps
            if cat.incident is None:  # an outage does not raise its own bar
                start = max(state.last_step, warm_end)
                counted = min(step, start + 2 * w)  # later delayed windows hold no bucket: zeros
                for s in range(start, counted):
                    cat.baseline = alpha * self.window_count(cat, s - w) + (1 - alpha) * cat.baseline
                if step > counted:
                    cat.baseline *= (1 - alpha) ** (step - counted)
            cat.buckets = {s: c for s, c in cat.buckets.items() if s > horizon}
        state.last_step = step

    def _record(self, state: KeyState, category: str, action: str, closed_at: float | None = None) -> IncidentRecord:
        inc = state.categories[category].incident or {}
        return IncidentRecord(
            inc["id"],
            action,
            state.city,
            category,
            inc["count"],
            inc["baseline"],
            inc["first_at"],
            inc["latest_at"],
            inc["opened_at"],
            closed_at,
        )

    def judged_baseline(self, state: KeyState, category: str, step: int) -> float | None:
        """The baseline a category is judged against now (None: still warming up, no prior)."""
        if self.warming(state, step):
            return self.policy.prior(state.city, category)
        return state.categories[category].baseline

    def complaint(self, state: KeyState, ticket_id: str, at: float, category: str | None = None) -> Outcome:
        """A complaint of this city (and `category`; default: the key's own "city|category"
        suffix) at event time `at`: count it, maybe open an incident, link it."""
        policy, out = self.policy, Outcome()
        category = category or state.key.partition("|")[2] or "other"
        step = int(at // policy.step_seconds)
        if state.last_step is not None and step < state.last_step - self.window_steps:
            return out  # older than the window: too late to count
        if state.last_step is None or step > state.last_step:
            self._roll(state, step)
        cat = state.categories.setdefault(category, CategoryState())
        cat.buckets[step] = cat.buckets.get(step, 0) + 1
        if self.warming(state, step):
            cat.seen += 1
        inc = cat.incident
        if inc is not None:
            # Linking is idempotent downstream (a ticket keeps one incident id), so no list of
            # linked tickets is kept here: the state stays small however large the outage.
            inc["count"] += 1
            inc["latest_at"] = max(inc["latest_at"], at)
            out.links.append((ticket_id, inc["id"]))
            if inc["count"] % policy.update_every == 0:
                out.records.append(self._record(state, category, "update"))
            return out
        # Remembered only while no incident is open: they are linked when one opens.
        # A re-delivered complaint comes right after itself; the tail is where to look for it.
        if all(t != ticket_id for t, _ in cat.recent[-RECENT_DUPLICATE_LOOKBACK:]):
            cat.recent.append([ticket_id, at])
        horizon = at - policy.window_seconds
        if cat.recent[0][1] < horizon or len(cat.recent) > RECENT_LIMIT:
            cat.recent = [r for r in cat.recent if r[1] >= horizon][-RECENT_LIMIT:]
        now_step = max(step, state.last_step or step)
        baseline = self.judged_baseline(state, category, now_step)
        if baseline is None:
            return out
        count = self.window_count(cat, now_step)
        if count < max(policy.floor, policy.multiple * max(baseline, policy.min_baseline)):
            return out
        city_count = sum(self.window_count(c, now_step) for c in state.categories.values())
        if count < policy.min_share * city_count:
            return out
        window_start = (now_step - self.window_steps + 1) * policy.step_seconds
        incident_id = f"INC:{key_of(state.city, category)}:{window_start}"
        if incident_id in cat.closed:
            incident_id = f"{incident_id}:{step}"
        linked = [t for t, _ in cat.recent]
        cat.incident = {
            "id": incident_id,
            "count": len(linked),
            "baseline": baseline,
            "first_at": min(a for _, a in cat.recent),
            "latest_at": at,
            "opened_at": at,
        }
        out.records.append(self._record(state, category, "open"))
        out.links.extend((t, incident_id) for t in linked)
        cat.recent = []
        return out

    def tick(self, state: KeyState, now: float) -> Outcome:
        """Close the city's incidents after their quiet period (called by a timer)."""
        out = Outcome()
        for category, cat in state.categories.items():
            inc = cat.incident
            if inc is not None and now - inc["latest_at"] >= self.policy.quiet_seconds:
                out.records.append(
                    self._record(state, category, "close", closed_at=inc["latest_at"] + self.policy.quiet_seconds)
                )
                cat.closed = [*cat.closed, inc["id"]][-20:]
                cat.incident = None
        return out
