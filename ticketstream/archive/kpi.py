"""The KPIs of DOMAIN §9 from archived rows (pure: the same rows give the same numbers).

Definitions, chosen where the documents leave room (README, Archive):
- population: tickets received in [since, until);
- on-time rate per stage (及時率): of the population's stages that were met or breached, the share
  met by their due time without a breach; target 95 % (003 §6.3);
- first-response and resolution times: received to the first cycle's `response` / `resolution`
  met, in seconds; percentiles by nearest rank (exact, reproducible by hand);
- backlog: tickets received before `until` and not closed at `until`, by team and grade;
- repeat rate (投訴重複率): share of the population with earlier complaints of the same customer in
  the same top-level category within 30 days (the triage's repeat_count >= 1);
- closed-loop rate (閉環率): share of the population closed by `until`;
- first-handling completion rate (首次處理完成率): of the population's closed tickets, the share
  never reopened (one cycle);
- satisfaction: surveys completed in the period; rate = share of scores 4-5 (target 90 %), index =
  mean score as a share of 5 (the alert of DOMAIN §9 fires below 85);
- volume by category, region (province/city), channel and grade; mass incidents opened in the period.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

STAGES = ("response", "resolution", "investigation", "result_feedback", "survey")
ON_TIME_TARGET = 0.95
SATISFACTION_TARGET = 0.90
GROUPS = {"team": ("team",), "category": ("category",), "region": ("province", "city"), "channel": ("channel",)}
LOCAL = ZoneInfo("Asia/Shanghai")


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least p % of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _durations(stages: Iterable[dict[str, Any]], stage: str, received: dict[str, datetime]) -> list[float]:
    out = []
    for s in stages:
        if s["stage"] == stage and s["cycle"] == 1 and s["met_at"] is not None and received.get(s["ticket_id"]):
            out.append((s["met_at"] - received[s["ticket_id"]]).total_seconds())
    return out


def _distribution(values: list[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
        "mean": round(sum(values) / len(values), 3) if values else None,
    }


def _on_time(stages: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    judged: Counter[str] = Counter()
    on_time: Counter[str] = Counter()
    breached: Counter[str] = Counter()
    for s in stages:
        if s["met_at"] is None and not s["breached"]:
            continue  # still running (or cancelled) and not late: not judged yet
        judged[s["stage"]] += 1
        breached[s["stage"]] += bool(s["breached"])
        on_time[s["stage"]] += bool(
            s["met_at"] is not None and not s["breached"] and (s["due_at"] is None or s["met_at"] <= s["due_at"])
        )
    return {
        stage: {
            "judged": judged[stage],
            "on_time": on_time[stage],
            "breached": breached[stage],
            "rate": _rate(on_time[stage], judged[stage]),
            "target": ON_TIME_TARGET,
            "meets_target": None if not judged[stage] else on_time[stage] / judged[stage] >= ON_TIME_TARGET,
        }
        for stage in STAGES
        if judged[stage]
    }


def _satisfaction(surveys: list[dict[str, Any]]) -> dict[str, Any]:
    scores = [s["score"] for s in surveys if s.get("score") is not None]
    satisfied = sum(1 for s in scores if s >= 4)
    return {
        "surveys": len(scores),
        "satisfied": satisfied,
        "rate": _rate(satisfied, len(scores)),
        "index": round(100 * sum(scores) / (5 * len(scores)), 3) if scores else None,
        "target": SATISFACTION_TARGET,
        "meets_target": None if not scores else satisfied / len(scores) >= SATISFACTION_TARGET,
    }


def _closed_by(ticket: dict[str, Any], until: datetime) -> bool:
    return ticket["closed_at"] is not None and ticket["closed_at"] < until


def _core(
    population: list[dict[str, Any]], stages: list[dict[str, Any]], surveys: list[dict[str, Any]], until: datetime
) -> dict[str, Any]:
    received = {t["ticket_id"]: t["received_at"] for t in population}
    closed = [t for t in population if _closed_by(t, until)]
    return {
        "volume": len(population),
        "on_time": _on_time(stages),
        "first_response_seconds": _distribution(_durations(stages, "response", received)),
        "resolution_seconds": _distribution(_durations(stages, "resolution", received)),
        "repeat_rate": _rate(sum(1 for t in population if (t["repeat_count"] or 0) >= 1), len(population)),
        "closed_loop_rate": _rate(len(closed), len(population)),
        "first_handling_completion_rate": _rate(sum(1 for t in closed if (t["cycle"] or 1) == 1), len(closed)),
        "satisfaction": _satisfaction(surveys),
    }


def _key(row: dict[str, Any], by: str) -> str:
    return "/".join(str(row.get(c) or "-") for c in GROUPS[by])


def compute(
    rows: dict[str, list[dict[str, Any]]], since: datetime, until: datetime, by: str | None = None
) -> dict[str, Any]:
    """Every KPI of the period from `Store.kpi_rows` (tickets, stages, surveys, incidents)."""
    if by is not None and by not in GROUPS:
        raise ValueError(f"--by must be one of {', '.join(GROUPS)}")
    population = [t for t in rows["tickets"] if t["received_at"] is not None and since <= t["received_at"] < until]
    ids = {t["ticket_id"] for t in population}
    stages = [s for s in rows["stages"] if s["ticket_id"] in ids]
    surveys = rows["surveys"]
    backlog: dict[str, Counter[str]] = defaultdict(Counter)
    for t in rows["tickets"]:
        if t["received_at"] is not None and t["received_at"] < until and not _closed_by(t, until):
            backlog[t["team"] or "unrouted"][t["grade"] or "-"] += 1
    report: dict[str, Any] = {
        "since": since.isoformat(),
        "until": until.isoformat(),
        **_core(population, stages, surveys, until),
        "backlog": {team: dict(sorted(grades.items())) for team, grades in sorted(backlog.items())},
        "backlog_total": sum(sum(g.values()) for g in backlog.values()),
        "breached_tickets": sum(1 for t in population if (t["breaches"] or 0) > 0),
        "volume_by": {
            "category": dict(Counter(t["category"] or "-" for t in population).most_common()),
            "region": dict(Counter(_key(t, "region") for t in population).most_common()),
            "channel": dict(Counter(t["channel"] or "-" for t in population).most_common()),
            "grade": dict(sorted(Counter(t["grade"] or "-" for t in population).items())),
        },
        "incidents": {
            "opened": len(rows["incidents"]),
            "by_city_category": dict(Counter(f"{i['city']}/{i['category']}" for i in rows["incidents"]).most_common()),
            "linked_tickets": sum(1 for t in population if t["incident_id"]),
        },
        "trend": _trend(population, stages, surveys),
    }
    if by:
        groups: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: {"t": [], "s": [], "v": []})
        key_of = {t["ticket_id"]: _key(t, by) for t in population}
        for t in population:
            groups[key_of[t["ticket_id"]]]["t"].append(t)
        for s in stages:
            groups[key_of[s["ticket_id"]]]["s"].append(s)
        for v in surveys:
            groups[_key(v, by)]["v"].append(v)
        report["by"] = by
        report["groups"] = {k: _core(g["t"], g["s"], g["v"], until) for k, g in sorted(groups.items())}
    return report


def _trend(
    population: list[dict[str, Any]], stages: list[dict[str, Any]], surveys: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per local day (Asia/Shanghai) of receipt: volume and on-time rates; satisfaction by survey day."""
    day_of = {t["ticket_id"]: t["received_at"].astimezone(LOCAL).date().isoformat() for t in population}
    days: dict[str, dict[str, Any]] = defaultdict(lambda: {"volume": 0, "stages": [], "surveys": []})
    for t in population:
        days[day_of[t["ticket_id"]]]["volume"] += 1
    for s in stages:
        days[day_of[s["ticket_id"]]]["stages"].append(s)
    for v in surveys:
        days[v["occurred_at"].astimezone(LOCAL).date().isoformat()]["surveys"].append(v)
    out = []
    for day, d in sorted(days.items()):
        rates = _on_time(d["stages"])
        out.append(
            {
                "day": day,
                "volume": d["volume"],
                "on_time": {stage: r["rate"] for stage, r in rates.items()},
                "satisfaction_rate": _satisfaction(d["surveys"])["rate"],
            }
        )
    return out
