"""SLA clocks of one ticket (限時辦結), exactly as DOMAIN §5's clock model says.

A ticket's SLA state is a small set of facts: when it was received, its current grade, and the
times of its lifecycle events. Stage timings are *derived* from those facts every time, never
updated in place, which is what makes late, duplicated and out-of-order events harmless: an
event counts at its own time wherever it lands in the stream, a duplicate adds nothing, and a
grade change simply re-derives every stage from its original start (retroactive re-timing).

What has been emitted is remembered per ticket (`fired`), so an id is emitted once, and always
with the same content: `{ticket_id}:{cycle}:{stage}:{kind}:{percent}` (`met` has no percent).

- Cycles: the first starts when the ticket is received; each reopen starts a new one.
  `resolution` restarts at the reopen; `result_feedback` and `survey` start when the cycle is
  resolved; the previous cycle's open `survey` is cancelled by the reopen, not breached.
- Pauses: from `ticket.waiting_customer` to `ticket.customer_replied` no time counts; the
  deadline moves out by the counting time of the pause; while a pause is open nothing is due.
- A closed ticket ends its cycle: stages not met by then are cancelled (`survey` is met by it).
- Firing: `advance(now)` fires every due threshold. `apply(...)` first fires what was already
  due, then applies the change; thresholds the change itself puts in the past fire at once,
  marked retroactive, but only the most severe of each stage (a passed deadline: the breach alone).
- Escalation (DOMAIN §6): a `resolution` breach escalates one tier; each further step (50 %) of
  the target without resolution escalates again, up to the top tier.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter

from ticketstream.schemas.events import EventType, Grade
from ticketstream.sla.calendar import Unit, WorkCalendar
from ticketstream.sla.policy import SlaPolicy, StagePolicy

INF = float("inf")
UNIT_SECONDS = {Unit.NATURAL_HOURS: 3600.0, Unit.WORKING_HOURS: 3600.0, Unit.WORKING_DAYS: 86_400.0}
SLA_FACTS = {t.value for t in EventType} - {
    EventType.COMPLAINT_RECEIVED.value,
    EventType.REGRADED.value,
    EventType.RECLASSIFIED.value,
    EventType.ASSIGNED.value,
    EventType.ESCALATED.value,
}


_REOPENED, _RESOLVED, _CLOSED = EventType.REOPENED.value, EventType.RESOLVED.value, EventType.CLOSED.value
"""Fact kinds `_derive` looks for in every ticket, as plain strings (an enum member's lookup costs
more than the comparison it is used in)."""


class SlaKind(StrEnum):
    """What happened to a stage: a warning (50/75/90 %), the breach (100 %), met, an escalation."""

    WARNING = "warning"
    BREACH = "breach"
    MET = "met"
    ESCALATED = "escalated"


@dataclass(frozen=True, slots=True)
class SlaEvent:
    """A warning, breach, met or escalation of one stage of one ticket's cycle."""

    id: str
    ticket_id: str
    cycle: int
    stage: str
    kind: SlaKind
    percent: int | None
    due_at: datetime | None
    fired_at: datetime
    """When it fired: the threshold's instant; for a retroactive one, the processing of the change
    that made it due (never earlier than the event that caused it)."""
    retroactive: bool
    grade: Grade
    from_tier: int | None = None
    to_tier: int | None = None
    team: str | None = None
    """The team that owned the ticket when it fired (set by the stream; replay sets it too)."""


@dataclass
class TicketSla:
    """The SLA facts of one ticket. `facts` are (event type, epoch seconds, event id), sorted."""

    ticket_id: str
    received_at: float | None = None
    grade: Grade | None = None
    facts: list[tuple[float, str, str]] = field(default_factory=list)
    fired: set[str] = field(default_factory=set)
    suppressed: set[str] = field(default_factory=set)

    def add_fact(self, event_type: str, at: float, event_id: str) -> bool:
        """Record a lifecycle event once (by id); False if it was known already."""
        if any(f[2] == event_id for f in self.facts):
            return False
        insort(self.facts, (at, event_type, event_id))
        return True

    def at_risk_stages(self, at_risk_percent: int) -> list[str]:
        """Stages (of any cycle) past a warning of at least `at_risk_percent` with neither a breach
        nor a met yet."""
        risky = set()
        for key in self.fired:
            cycle, stage, kind, *rest = key.split(":")
            if (
                kind == SlaKind.WARNING
                and rest
                and int(rest[0]) >= at_risk_percent
                and f"{cycle}:{stage}:breach:100" not in self.fired
                and f"{cycle}:{stage}:met" not in self.fired
            ):
                risky.add(stage)
        return sorted(risky)

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": self.ticket_id,
            "r": self.received_at,
            "g": self.grade.value if self.grade else None,
            "f": [list(f) for f in self.facts],
            "x": sorted(self.fired),
            "s": sorted(self.suppressed),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TicketSla:
        return cls(
            raw["t"],
            raw.get("r"),
            Grade(raw["g"]) if raw.get("g") else None,
            sorted(tuple(f) for f in raw.get("f", [])),  # kept in time order (`add_fact`); `_derive` relies on it
            set(raw.get("x", [])),
            set(raw.get("s", [])),
        )


@dataclass(slots=True)
class Threshold:
    kind: SlaKind
    percent: int
    at: float | None
    tier: int | None = None


@dataclass(slots=True)
class StageTiming:
    cycle: int
    stage: str
    start: float
    due_at: float | None
    met_at: float | None
    cancelled_at: float | None
    paused: bool
    thresholds: tuple[Threshold, ...]
    """Shared by every ticket with the same stage start (for working days, the same local day),
    target and pauses: never mutated."""

    def key(self, kind: str, percent: int | None = None) -> str:
        return f"{self.cycle}:{self.stage}:{kind}" + (f":{percent}" if percent is not None else "")

    def stops_before(self, at: float) -> bool:
        """Met or cancelled at or before `at`: nothing of this stage fires at `at` or later."""
        return (self.met_at is not None and self.met_at <= at) or (
            self.cancelled_at is not None and self.cancelled_at <= at
        )


def _pauses(facts: list[tuple[float, str, str]]) -> list[tuple[float, float | None]]:
    out: list[tuple[float, float | None]] = []
    opened: float | None = None
    for at, kind, _ in facts:
        if kind == EventType.WAITING_CUSTOMER and opened is None:
            opened = at
        elif kind == EventType.CUSTOMER_REPLIED and opened is not None:
            out.append((opened, at))
            opened = None
    if opened is not None:
        out.append((opened, None))
    return out


@dataclass(frozen=True, slots=True)
class _Stage:
    """A stage's policy in the form `_derive` reads it for every ticket: event kinds as sets of
    plain strings, targets in seconds."""

    name: str
    unit: Unit
    escalates: bool
    every_cycle: bool
    from_resolution: bool
    met_by: frozenset[str]
    opened_by: frozenset[str]
    open_for_grades: frozenset[str] | None
    cancelled_by_reopen: bool
    targets: dict[Grade, float]

    @classmethod
    def of(cls, name: str, sp: StagePolicy) -> _Stage:
        return cls(
            name,
            sp.unit,
            sp.escalates,
            sp.every_cycle,
            sp.starts == "resolved",
            frozenset(kind.value for kind in sp.met_by),
            frozenset(kind.value for kind in sp.opened_by),
            None if sp.open_for_grades is None else frozenset(grade.value for grade in sp.open_for_grades),
            sp.cancelled_by_reopen,
            {grade: target * UNIT_SECONDS[sp.unit] for grade, target in sp.targets.items()},
        )


def _firsts(facts: list[tuple[float, str, str]], lo: float, hi: float) -> dict[str, float]:
    """The earliest instant of each kind of fact in [lo, hi) (facts are kept in time order)."""
    out: dict[str, float] = {}
    for at, kind, _ in facts:
        if at >= hi:
            break
        if at >= lo and kind not in out:
            out[kind] = at
    return out


class SlaEngine:
    def __init__(self, policy: SlaPolicy, calendar: WorkCalendar) -> None:
        self.policy = policy
        self.calendar = calendar
        # A stage's thresholds depend only on its unit, start (for working days only the local day
        # it falls on: `_derive`), target and the ticket's pauses, and
        # a ticket's timings are derived several times per event (before and after the change,
        # then for its view) and again with each new fact while most stages keep their start:
        # making each set once per process halves the ticket agent's time (bench_pipeline.py).
        # Bounded, so a million tickets do not grow it without end: 32,768 sets of marks, about
        # 23 MB (725 bytes a set, measured with tracemalloc), the stages of some 7,000 tickets.
        self._stage_marks = lru_cache(maxsize=1 << 15)(self._thresholds)
        self._timings = lru_cache(maxsize=1 << 14)(self._derive_timings)
        self._templates = {
            escalates: tuple((m.kind, m.percent, m.tier) for m in self._marks(escalates)) for escalates in (False, True)
        }
        self._percents = {
            escalates: tuple(percent for _, percent, _ in marks) for escalates, marks in self._templates.items()
        }
        self._breach = {
            escalates: next(i for i, (kind, _, _) in enumerate(marks) if kind is SlaKind.BREACH)
            for escalates, marks in self._templates.items()
        }
        """Where the breach (the stage's due instant) is among a stage's marks."""
        self._stages = [_Stage.of(name, sp) for name, sp in policy.stages.items()]
        self.iso = lru_cache(maxsize=1 << 16)(self._iso)
        """An instant as local ISO 8601 text (the ticket view formats the same instants again and again)."""

    def _iso(self, epoch: float) -> str:
        return datetime.fromtimestamp(epoch, self.calendar.tz).isoformat()

    # -- derivation ---------------------------------------------------------------------------
    def _dt(self, epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch, self.calendar.tz)

    def deadline(
        self, unit: Unit, start: float, seconds: float, pauses: Sequence[tuple[float, float | None]]
    ) -> float | None:
        """When `seconds` of counting time have elapsed from `start`, pauses excluded (None while
        a pause that began before that instant is still open)."""
        return self.deadlines(unit, start, [seconds], pauses)[0]

    def deadlines(
        self, unit: Unit, start: float, seconds: Sequence[float], pauses: Sequence[tuple[float, float | None]]
    ) -> list[float | None]:
        """`deadline` of each of `seconds`, in one walk of the calendar per pause for them all (a
        stage's marks: 50, 75, 90, 100 % ... of one target, 挂起 excluded). At each pause every mark
        that does not fall before it has the same stretch counted off, and all resume at its end."""
        cal = self.calendar
        cursor = cal.counting_start(unit, self._dt(start))
        out: list[float | None] = [None] * len(seconds)
        remaining = list(seconds)
        running = list(range(len(seconds)))
        for p_start, p_end in pauses:
            if p_end is not None and p_end <= cursor.timestamp():
                continue
            candidates = cal.advance_each(unit, cursor, [remaining[i] for i in running])
            still = []
            for i, candidate in zip(running, candidates, strict=True):
                if p_start >= candidate.timestamp():
                    out[i] = candidate.timestamp()  # falls before the pause
                else:
                    still.append(i)
            running = still
            if not running:
                return out
            counted = cal.measure(unit, cursor, max(self._dt(p_start), cursor))
            for i in running:
                remaining[i] -= counted
            if p_end is None:
                return out  # the rest wait for the open pause to end
            cursor = max(cursor, self._dt(p_end))
        for i, at in zip(running, cal.advance_each(unit, cursor, [remaining[i] for i in running]), strict=True):
            out[i] = at.timestamp()
        return out

    def _marks(self, escalates: bool) -> list[Threshold]:
        marks = [Threshold(SlaKind.WARNING, p, None) for p in self.policy.warnings] + [
            Threshold(SlaKind.BREACH, 100, None)
        ]
        if escalates:
            marks += [
                Threshold(SlaKind.ESCALATED, 100 + i * self.policy.escalation_step, None, tier=i + 1)
                for i in range(self.policy.escalation_max_tier)
            ]
        return marks

    def _threshold_instants(
        self, unit: Unit, start: float, target: float, escalates: bool, pauses: tuple[tuple[float, float | None], ...]
    ) -> tuple[float | None, ...]:
        """The instant of each of a stage's marks (`_templates` order): `deadline` of its share of
        the target: one walk of the calendar for them all (and one more per pause)."""
        shares = [target * p / 100 for p in self._percents[escalates]]
        if not pauses:
            return tuple(self.calendar.advance_each_epoch(unit, start, shares))
        return tuple(self.deadlines(unit, start, shares, pauses))

    def _thresholds(
        self, unit: Unit, start: float, target: float, escalates: bool, pauses: tuple[tuple[float, float | None], ...]
    ) -> tuple[Threshold, ...]:
        """A stage's marks with their instants. They depend only on these arguments, and a ticket's
        timings are derived again with every fact while most of its stages keep their start, so
        they are made once (`_stage_marks`) and shared."""
        instants = self._threshold_instants(unit, start, target, escalates, pauses)
        return tuple(
            Threshold(kind, percent, at, tier)
            for (kind, percent, tier), at in zip(self._templates[escalates], instants, strict=True)
        )

    def timings(self, state: TicketSla) -> list[StageTiming]:
        """Every stage's timing, derived from the ticket's facts (the same facts give the same
        timings, so they are derived once: an event needs them before and after its change and
        for the ticket's view). The StageTimings returned are shared: never mutate them."""
        if state.received_at is None or state.grade is None:
            return []
        return list(self._timings(state.received_at, state.grade, tuple(state.facts)))

    def _derive_timings(
        self, received_at: float, grade: Grade, facts: tuple[tuple[float, str, str], ...]
    ) -> tuple[StageTiming, ...]:
        state = TicketSla("", received_at, grade, list(facts))
        return tuple(self._derive(state))

    def _derive(self, state: TicketSla) -> list[StageTiming]:
        received, grade = state.received_at, state.grade
        assert received is not None and grade is not None
        facts = state.facts
        cycle_starts = [received] + [at for at, kind, _ in facts if kind == _REOPENED and at > received]
        cycles = len(cycle_starts)
        pauses = tuple(_pauses(facts))
        paused = any(p_end is None for _, p_end in pauses)
        windows = {(-INF, INF): _firsts(facts, -INF, INF)}
        kinds = windows[-INF, INF]  # every kind of fact the ticket has
        out: list[StageTiming] = []
        for stage in self._stages:
            if (
                stage.open_for_grades is not None
                and grade not in stage.open_for_grades
                and stage.opened_by.isdisjoint(kinds)
            ):
                continue
            for cycle in range(1, cycles + 1) if stage.every_cycle else (1,):
                lo = -INF if cycle == 1 else cycle_starts[cycle - 1]
                hi = cycle_starts[cycle] if stage.every_cycle and cycle < cycles else INF
                first = windows.get((lo, hi))
                if first is None:
                    first = windows[lo, hi] = _firsts(facts, lo, hi)
                start = first.get(_RESOLVED) if stage.from_resolution else cycle_starts[cycle - 1]
                if start is None:
                    continue
                met_at = min((first[kind] for kind in stage.met_by if kind in first), default=None)
                cancelled_at = None
                if stage.cancelled_by_reopen and hi < INF and (met_at is None or met_at >= hi):
                    cancelled_at = hi
                closed_at = first.get(_CLOSED)
                if closed_at is not None and (met_at is None or met_at > closed_at):
                    cancelled_at = closed_at if cancelled_at is None else min(cancelled_at, closed_at)
                # Working days count from the next local midnight: every start of a day has the
                # same marks, so the day's tickets share one set instead of one walk each.
                counted_from = self.calendar.day_start(start) if stage.unit is Unit.WORKING_DAYS else start
                thresholds = self._stage_marks(stage.unit, counted_from, stage.targets[grade], stage.escalates, pauses)
                due_at = thresholds[self._breach[stage.escalates]].at
                out.append(StageTiming(cycle, stage.name, start, due_at, met_at, cancelled_at, paused, thresholds))
        return out

    # -- firing -------------------------------------------------------------------------------
    def _event(
        self,
        state: TicketSla,
        st: StageTiming,
        kind: SlaKind,
        percent: int | None,
        fired_at: float,
        retroactive: bool,
        tier: int | None = None,
    ) -> SlaEvent:
        assert state.grade is not None
        return SlaEvent(
            id=f"{state.ticket_id}:{st.key(kind, percent)}",
            ticket_id=state.ticket_id,
            cycle=st.cycle,
            stage=st.stage,
            kind=kind,
            percent=percent,
            due_at=self._dt(st.due_at) if st.due_at is not None else None,
            fired_at=self._dt(fired_at),
            retroactive=retroactive,
            grade=state.grade,
            from_tier=tier - 1 if tier else None,
            to_tier=tier,
        )

    def _due(
        self, state: TicketSla, timings: list[StageTiming], now: float, strict: bool = False
    ) -> list[tuple[StageTiming, Threshold]]:
        """Unfired thresholds at or before `now` (before it, when `strict`) that nothing stopped."""
        due = []
        for st in timings:
            for th in st.thresholds:
                if th.at is None or th.at > now or (strict and th.at == now):
                    continue
                key = st.key(th.kind, th.percent)  # only for what is due: most thresholds are still ahead
                if key in state.fired or key in state.suppressed:
                    continue
                if st.stops_before(th.at):
                    continue
                due.append((st, th))
        due.sort(key=lambda item: (item[1].at, item[1].percent))
        return due

    def _fire(self, state: TicketSla, due: list[tuple[StageTiming, Threshold]]) -> list[SlaEvent]:
        out = []
        for st, th in due:
            state.fired.add(st.key(th.kind, th.percent))
            out.append(self._event(state, st, th.kind, th.percent, th.at, False, th.tier))  # type: ignore[arg-type]
        return out

    def advance(
        self, state: TicketSla, now: float, strict: bool = False, timings: list[StageTiming] | None = None
    ) -> list[SlaEvent]:
        """Fire every threshold due at or before `now` (before it, when `strict`), in time order.
        Pass `timings` when the caller already derived them (firing does not change them)."""
        return self._fire(state, self._due(state, self.timings(state) if timings is None else timings, now, strict))

    def next_due(self, state: TicketSla, timings: list[StageTiming] | None = None) -> float | None:
        """The earliest instant at which something of this ticket will fire (None: nothing pending)."""
        best: float | None = None
        done = state.fired | state.suppressed
        for st in self.timings(state) if timings is None else timings:
            for th in st.thresholds:
                at = th.at
                if at is None or (best is not None and at >= best):
                    continue  # cannot be the earliest: no need to name it (most of a stage's marks)
                if st.stops_before(at) or st.key(th.kind, th.percent) in done:
                    continue
                best = at
        return best

    def _apply(self, state: TicketSla, now: float, change: Any) -> list[SlaEvent]:
        # What was due before `now` fires first. What falls due exactly at `now` is judged after
        # the change (a stage met at the very instant of its threshold is met, not breached),
        # and fires normally if it was due anyway; what the change alone made due is retroactive.
        before = self.timings(state)
        out = self.advance(state, now, strict=True, timings=before)
        due_anyway = {st.key(th.kind, th.percent) for st, th in self._due(state, before, now)}
        change()
        timings = self.timings(state)
        newly: list[tuple[StageTiming, Threshold]] = []
        anyway: list[tuple[StageTiming, Threshold]] = []
        for st, th in self._due(state, timings, now):
            (anyway if st.key(th.kind, th.percent) in due_anyway else newly).append((st, th))
        out += self._fire(state, anyway)
        most_severe: dict[tuple[int, str, str], tuple[StageTiming, Threshold]] = {}
        for st, th in newly:
            series = (st.cycle, st.stage, "escalated" if th.kind is SlaKind.ESCALATED else "sla")
            if series not in most_severe or th.percent > most_severe[series][1].percent:
                most_severe[series] = (st, th)
        for st, th in newly:
            key = st.key(th.kind, th.percent)
            series = (st.cycle, st.stage, "escalated" if th.kind is SlaKind.ESCALATED else "sla")
            if most_severe[series][1] is th:
                state.fired.add(key)
                # DOMAIN §5: it fires "at once", i.e. when the change is processed, not back at
                # the instant it would have had (that moment has passed unseen).
                out.append(self._event(state, st, th.kind, th.percent, now, True, th.tier))
            else:
                state.suppressed.add(key)
        for st in timings:
            key = st.key(SlaKind.MET)
            if st.met_at is not None and key not in state.fired:
                state.fired.add(key)
                out.append(self._event(state, st, SlaKind.MET, None, st.met_at, False))
        return out

    def received(self, state: TicketSla, at: float, grade: Grade, now: float) -> list[SlaEvent]:
        """The ticket was received at `at` and graded `grade` (from triage)."""

        def change() -> None:
            state.received_at, state.grade = at, grade

        return self._apply(state, now, change)

    def regrade(self, state: TicketSla, grade: Grade, now: float) -> list[SlaEvent]:
        def change() -> None:
            state.grade = grade

        return self._apply(state, now, change)

    def fact(self, state: TicketSla, event_type: str, at: float, event_id: str, now: float) -> list[SlaEvent]:
        """A lifecycle event; those that do not touch a clock are ignored."""
        if event_type not in SLA_FACTS:
            return self.advance(state, now)
        return self._apply(state, now, lambda: state.add_fact(event_type, at, event_id))


def epoch(dt: datetime) -> float:
    return dt.astimezone(UTC).timestamp()


SLA_EVENT: TypeAdapter[SlaEvent] = TypeAdapter(SlaEvent)
"""(De)serialises SLA events: the wire form on sla.events and of the replay output."""
