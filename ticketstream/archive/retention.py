"""Retention ages ("3y", "18m", "90d") and the cut-off instant they give (DOMAIN §8: records are
kept at least 3 years; the age is configurable)."""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta

_AGE_RE = re.compile(r"^\s*(\d{1,4})\s*([ymd])\s*$", re.IGNORECASE)


def parse_age(text: str) -> tuple[int, str]:
    """(count, unit) of an age like '3y', '18m' or '90d'; ValueError naming the expected form."""
    match = _AGE_RE.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"expected an age like 3y, 18m or 90d (years, months, days), got {text!r}")
    return int(match.group(1)), match.group(2).lower()


def _minus_months(when: datetime, months: int) -> datetime:
    """Calendar months back; a day that does not exist in the target month becomes its last day
    (29 February minus one year is 28 February), so the cut-off never moves into the future."""
    total = when.year * 12 + when.month - 1 - months
    year, month = divmod(total, 12)
    day = min(when.day, calendar.monthrange(year, month + 1)[1])
    return when.replace(year=year, month=month + 1, day=day)


def cutoff(now: datetime, age: str) -> datetime:
    """The instant before which a record is older than `age` (calendar years and months, so that
    '3y' on 2029-11-23 means 2026-11-23 at the same time, whatever the leap days)."""
    count, unit = parse_age(age)
    if unit == "d":
        return now - timedelta(days=count)
    return _minus_months(now, count * 12 if unit == "y" else count)
