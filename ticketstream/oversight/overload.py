"""Team overload (班組過載): breach and at-risk counts per (team, grade, stage) in tumbling windows.

The counting lives in Faust windowed tables (`streams.breaches`); this module holds the pure
decisions: which SLA events count as what, the table key, and the alert when a team's breaches
in one window reach the threshold (exactly once per window: the alert id names the window).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ticketstream.oversight.alerts import team_overload
from ticketstream.sla.engine import SlaKind

WINDOWS = {"5m": 300, "1h": 3600}


def counted_as(kind: str, percent: int | None, at_risk_percent: int) -> str | None:
    """'breach' for a breach, 'at_risk' for a warning of at least `at_risk_percent` (the SLA
    policy's), else None."""
    if kind == SlaKind.BREACH:
        return "breach"
    if kind == SlaKind.WARNING and percent is not None and percent >= at_risk_percent:
        return "at_risk"
    return None


def table_key(team: str, grade: str, stage: str, counted: str) -> str:
    return f"{team}|{grade}|{stage}|{counted}"


def parse_key(key: str) -> tuple[str, str, str, str]:
    team, grade, stage, counted = key.split("|")
    return team, grade, stage, counted


@dataclass(frozen=True, slots=True)
class OverloadAlert:
    id: str
    team: str
    grade: str
    stage: str
    window: str
    window_start: datetime
    breaches: int
    threshold: int

    def as_alert(self) -> dict[str, object]:
        """The `alerts` topic record, built and validated by `ticketstream.oversight.alerts`."""
        return team_overload(
            self.id, self.team, self.grade, self.stage, self.window, self.window_start, self.breaches, self.threshold
        )


def overload(
    team: str, grade: str, stage: str, window: str, window_start: float, before: int, count: int, threshold: int
) -> OverloadAlert | None:
    """An alert when this window's breach count has just reached the threshold (it went from
    `before` to `count`: breaches are counted a batch at a time), else None."""
    if not before < threshold <= count:
        return None
    start = datetime.fromtimestamp(window_start, UTC)
    return OverloadAlert(
        f"team_overload:{team}:{grade}:{stage}:{window}:{int(window_start)}",
        team,
        grade,
        stage,
        window,
        start,
        count,
        threshold,
    )
