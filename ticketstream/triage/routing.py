"""Routing (派單): which team's queue a ticket goes to, who else is told, and at which tier.

The routing table is data (`data/routing.toml`): ordered rules, first match wins. A regional
team works one queue per province and city (就近原則); the others have one national queue.
The first-contact agent stays the owner of record (首問負責制) whatever the routing says; the
router only chooses the assignee team.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ticketstream.policyfile import load_model
from ticketstream.schemas.events import Category, Channel, Grade, Team


class RoutingRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    team: Team
    grade: list[Grade] | None = None
    channel: list[Channel] | None = None
    category: list[Category] | None = None
    category_prefix: list[str] | None = None

    def matches(self, category: Category, grade: Grade, channel: Channel) -> bool:
        return (
            (self.grade is None or grade in self.grade)
            and (self.channel is None or channel in self.channel)
            and (self.category is None or category in self.category)
            and (self.category_prefix is None or any(category.value.startswith(p) for p in self.category_prefix))
        )


class Notify(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grades: dict[Grade, list[Team]] = {}
    categories: dict[Category, list[Team]] = {}


class Escalation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier_teams: dict[int, Team] = {2: Team.COMPLAINT_DESK, 3: Team.MANAGEMENT}
    """Tiers that hand the ticket to another team; other tiers keep the team (its lead takes over)."""


class RoutingTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_team: Team = Team.FRONTLINE
    escalation: Escalation = Escalation()
    regional_teams: list[Team] = [Team.FRONTLINE, Team.NETWORK_OPS, Team.TECH_SUPPORT]
    rules: list[RoutingRule] = Field(min_length=1)
    notify: Notify = Notify()


def load_table(path: str | Path | None = None) -> RoutingTable:
    return load_model(RoutingTable, path, "routing.toml")


@dataclass(frozen=True, slots=True)
class Route:
    team: Team
    queue: str
    """The team's queue: `team` for national teams, `team/province/city` for regional ones."""
    escalation_tier: int
    notify: tuple[Team, ...]
    reason: str


class Router:
    def __init__(self, table: RoutingTable | None = None) -> None:
        self.table = table or load_table()
        # Decisions depend on a few small enums only: memoise them (a hot path at intake rate).
        self._decide = lru_cache(maxsize=4096)(self._decide_uncached)

    def _decide_uncached(
        self, category: Category, grade: Grade, channel: Channel, team_override: Team | None
    ) -> tuple[Team, str, bool, tuple[Team, ...]]:
        table = self.table
        if team_override is not None:
            team, reason = team_override, "assigned by a person (ticket.assigned)"
        else:
            rule = next((r for r in table.rules if r.matches(category, grade, channel)), None)
            team, reason = (rule.team, rule.name) if rule else (table.default_team, "default team")
        notify = [*table.notify.grades.get(grade, []), *table.notify.categories.get(category, [])]
        return team, reason, team in table.regional_teams, tuple(t for t in dict.fromkeys(notify) if t != team)

    def route(
        self,
        category: Category,
        grade: Grade,
        channel: Channel,
        province: str,
        city: str,
        team_override: Team | None = None,
        escalation_tier: int = 0,
    ) -> Route:
        """The team and queue; an escalation tier above 0 takes the ladder's team for that tier
        (or the routed team's lead: queue suffix `#lead`)."""
        tier_team = max((t for t in self.table.escalation.tier_teams if t <= escalation_tier), default=None)
        if tier_team is not None and escalation_tier > 0:
            team_override = self.table.escalation.tier_teams[tier_team]
        team, reason, regional, notify = self._decide(category, grade, channel, team_override)
        queue = f"{team.value}/{province}/{city}" if regional else team.value
        if escalation_tier > 0:
            reason = f"escalated to tier {escalation_tier}" + ("" if tier_team else f"; {reason}")
            if tier_team is None:
                queue += "#lead"
        return Route(team, queue, escalation_tier, notify, reason)
