"""China's working calendar and the three SLA time units (DOMAIN §5, clock model).

Working days are mainland-China statutory working days: Monday-Friday, minus public holidays,
plus the official make-up working days (調休) on weekends. The published schedule comes from
the `chinese-calendar` package, per year; operators add a year or override single days in a
file. A date in a year with no data is loud: a warning, a metric (through `on_fallback`), and a
Monday-Friday fallback, never a crash.

The units:
- natural hours: 24x7;
- working hours: business hours (default 09:00-18:00 Asia/Shanghai) on working days, counting
  from the instant itself;
- working days: the day of the start is not counted (期間開始的日不計算在內); counting starts at
  00:00 of the next day and every working day counts 24 h, so N working days end at 24:00 of
  the N-th working day after the start date.

`advance` and `measure` are the two primitives every SLA deadline is built from: the instant
when an amount of counting time has elapsed, and the counting time between two instants.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import chinese_calendar
from pydantic import BaseModel, ConfigDict, Field

from ticketstream.policyfile import load_model

log = logging.getLogger(__name__)

MAX_DAYS_SCANNED = 3 * 366
"""A deadline further than this from its start means a calendar without working days: refuse."""


class Unit(StrEnum):
    NATURAL_HOURS = "natural_hours"
    WORKING_HOURS = "working_hours"
    WORKING_DAYS = "working_days"


class YearSchedule(BaseModel):
    """A year's statutory schedule for a year the package does not know (or to replace it)."""

    model_config = ConfigDict(extra="forbid")

    holidays: list[date] = []
    workdays: list[date] = Field(default=[], description="make-up working days (調休) on weekends")


class CalendarOverrides(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str = "Asia/Shanghai"
    business_open: time = time(9, 0)
    business_close: time = time(18, 0)
    years: dict[int, YearSchedule] = {}
    days: dict[date, Literal["workday", "holiday"]] = {}


def load_overrides(path: str | Path | None = None) -> CalendarOverrides:
    return load_model(CalendarOverrides, path, "calendar.toml")


class CalendarError(ValueError):
    pass


HORIZON_WARNING_DAYS = 45
"""How long before the last day with calendar data an operator is warned (alert, `calendar check`):
the State Council usually publishes next year's schedule in November or December."""


def package_years() -> set[int]:
    """The years whose schedule the installed chinese-calendar package knows."""
    from chinese_calendar import constants

    known = [*constants.holidays, *constants.workdays]
    return set(range(min(known).year, max(known).year + 1))


def _microseconds(seconds: float) -> int:
    """`seconds` in whole microseconds, the fraction rounded half to even as
    `datetime.fromtimestamp` and `timedelta` round it: `(fromtimestamp(a) + timedelta(seconds=b))
    .timestamp()` is `(µs(a) + µs(b)) / 1e6` in a zone of one UTC offset."""
    fraction, whole = math.modf(seconds)
    return int(whole) * 1_000_000 + round(fraction * 1e6)


class WorkCalendar:
    def __init__(
        self, overrides: CalendarOverrides | None = None, on_fallback: Callable[[int], None] | None = None
    ) -> None:
        self.overrides = overrides or load_overrides()
        if self.overrides.business_open >= self.overrides.business_close:
            raise CalendarError("business_open must be before business_close")
        self.tz: tzinfo = ZoneInfo(self.overrides.timezone)
        self._on_fallback = on_fallback
        self._warned: set[int] = set()
        self._year_days = {
            year: ({d: False for d in sched.holidays} | {d: True for d in sched.workdays})
            for year, sched in self.overrides.years.items()
        }
        self.is_working_day = lru_cache(maxsize=8192)(self._is_working_day)

    @cached_property
    def steady_offset(self) -> tuple[float, float] | None:
        """Epoch seconds [from, to) over which the calendar's zone keeps one UTC offset (no daylight
        saving), or None. Within it a natural-hours deadline is the start plus the seconds
        (`advance_each_epoch` adds them without a walk); a zone with daylight saving counts natural
        hours on the local wall clock, as `advance` does. Looked up once, a week at a time from 2000
        to 2100: a daylight-saving period lasts months."""
        lo, hi = datetime(2000, 1, 1, tzinfo=UTC).timestamp(), datetime(2100, 1, 1, tzinfo=UTC).timestamp()
        first = datetime.fromtimestamp(lo, self.tz).utcoffset()
        at = lo
        while at < hi:
            if datetime.fromtimestamp(at, self.tz).utcoffset() != first:
                return None
            at += 7 * 86_400
        return lo, hi

    def covered_years(self) -> set[int]:
        """Years with a statutory schedule: the package's and the override file's."""
        return package_years() | set(self.overrides.years)

    def covered_until(self, today: date) -> date:
        """The last day up to which every day from `today` on has calendar data (the day before
        `today` when its own year has none)."""
        years = self.covered_years()
        year = today.year
        if year not in years:
            return date(year - 1, 12, 31)
        while year + 1 in years:
            year += 1
        return date(year, 12, 31)

    def _is_working_day(self, day: date) -> bool:
        forced = self.overrides.days.get(day)
        if forced is not None:
            return forced == "workday"
        if day.year in self._year_days:
            return self._year_days[day.year].get(day, day.weekday() < 5)
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            if day.year not in self._warned:
                self._warned.add(day.year)
                log.warning(
                    "no working-calendar data for %s: falling back to Monday-Friday; add the year's "
                    "schedule to the calendar file",
                    day.year,
                )
            if self._on_fallback:
                self._on_fallback(day.year)
            return day.weekday() < 5

    # -- counting intervals -------------------------------------------------------------------
    def _local_midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(0), self.tz)

    def intervals(self, unit: Unit, start: datetime) -> Iterator[tuple[datetime, datetime | None]]:
        """The stretches of time that count, from `start` on, in order (end None: forever)."""
        if unit is Unit.NATURAL_HOURS:
            yield start, None
            return
        day = start.astimezone(self.tz).date()
        for _ in range(MAX_DAYS_SCANNED):
            if self.is_working_day(day):
                if unit is Unit.WORKING_DAYS:
                    lo, hi = self._local_midnight(day), self._local_midnight(day + timedelta(days=1))
                else:
                    lo = datetime.combine(day, self.overrides.business_open, self.tz)
                    hi = datetime.combine(day, self.overrides.business_close, self.tz)
                lo = max(lo, start)
                if hi > lo:
                    yield lo, hi
            day += timedelta(days=1)
        raise CalendarError(f"no working time within {MAX_DAYS_SCANNED} days after {start.isoformat()}")

    def day_start(self, epoch: float) -> float:
        """Epoch of the local midnight that begins the day of `epoch`. Working days count from the
        next midnight (`counting_start`), so every instant of one local day counts from the same
        instant as this one: what a working-days deadline depends on (`SlaEngine` shares one set of
        marks per day through it)."""
        return self._local_midnight(datetime.fromtimestamp(epoch, self.tz).date()).timestamp()

    def counting_start(self, unit: Unit, start: datetime) -> datetime:
        """Where counting begins: 00:00 of the next local day for working days, else the start."""
        if unit is Unit.WORKING_DAYS:
            return self._local_midnight(start.astimezone(self.tz).date() + timedelta(days=1))
        return start

    def advance(self, unit: Unit, start: datetime, seconds: float) -> datetime:
        """The instant when `seconds` of counting time have elapsed from `start`."""
        remaining = timedelta(seconds=seconds)
        for lo, hi in self.intervals(unit, start):
            if hi is None or hi - lo >= remaining:
                return lo + remaining
            remaining -= hi - lo
        raise CalendarError("unreachable")  # pragma: no cover - intervals() raises first

    def advance_each(self, unit: Unit, start: datetime, seconds: Sequence[float]) -> list[datetime]:
        """`advance(unit, start, s)` for every `s` of `seconds`, in one walk over the counting
        intervals: a stage's thresholds (50, 75, 90, 100 % ... of one target) all count from the same
        start, and walking the calendar once per threshold was most of a new ticket's clock work.
        The same instants as `advance` to the microsecond (timedelta arithmetic is exact)."""
        out: list[datetime] = [start] * len(seconds)
        intervals = self.intervals(unit, start)
        lo, hi = next(intervals)
        elapsed = timedelta(0)
        for i in sorted(range(len(seconds)), key=seconds.__getitem__):
            remaining = timedelta(seconds=seconds[i]) - elapsed
            while hi is not None and hi - lo < remaining:
                remaining -= hi - lo
                elapsed += hi - lo
                lo, hi = next(intervals)
            out[i] = lo + remaining
        return out

    def advance_each_epoch(self, unit: Unit, start: float, seconds: Sequence[float]) -> list[float]:
        """`advance_each` from the counting start of epoch `start`, in epoch seconds. Natural hours
        in the zone's `steady_offset` need no walk: the start plus each share, in whole
        microseconds rounded as `datetime.fromtimestamp` and `timedelta` round them, so the same
        instants to the microsecond."""
        steady = self.steady_offset
        if (
            unit is Unit.NATURAL_HOURS
            and steady is not None
            and steady[0] <= start
            and start + max(seconds, default=0.0) < steady[1]
        ):
            start_us = _microseconds(start)
            return [(start_us + _microseconds(s)) / 1e6 for s in seconds]
        cursor = self.counting_start(unit, datetime.fromtimestamp(start, self.tz))
        return [at.timestamp() for at in self.advance_each(unit, cursor, seconds)]

    def measure(self, unit: Unit, a: datetime, b: datetime) -> float:
        """Counting seconds between `a` and `b` (0 if b <= a)."""
        if b <= a:
            return 0.0
        total = 0.0
        for lo, hi in self.intervals(unit, a):
            if lo >= b:
                break
            end = b if hi is None else min(hi, b)
            total += (end - lo).total_seconds()
            if hi is None or hi >= b:
                break
        return total
