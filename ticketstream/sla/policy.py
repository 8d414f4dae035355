"""The SLA policy as data: stages, per-grade targets, units, warning percentages (DOMAIN §5).

Operators replace the shipped `data/sla_policy.toml`; an invalid policy is refused at start-up
with the exact problem (a missing grade target, a warning at 120 %, an unknown event type ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ticketstream.policyfile import load_model
from ticketstream.schemas.events import EventType, Grade
from ticketstream.sla.calendar import Unit


class StagePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = ""
    source: str = ""
    unit: Unit
    starts: Literal["received", "resolved"]
    """The clock starts when the cycle starts (received, or the reopen) or at the cycle's resolution."""
    met_by: list[EventType] = Field(min_length=1)
    every_cycle: bool = True
    """False: the stage exists in the first cycle only (first response, investigation)."""
    open_for_grades: list[Grade] | None = None
    """Only tickets of these grades have the stage ... """
    opened_by: list[EventType] = []
    """... unless one of these events opens it."""
    cancelled_by_reopen: bool = False
    escalates: bool = False
    targets: dict[Grade, float]

    @field_validator("targets")
    @classmethod
    def _every_grade(cls, targets: dict[Grade, float]) -> dict[Grade, float]:
        missing = [g.value for g in Grade if g not in targets]
        if missing:
            raise ValueError(f"no target for grade(s) {', '.join(missing)}")
        bad = [f"{g.value}={v}" for g, v in targets.items() if not v > 0]
        if bad:
            raise ValueError(f"targets must be positive: {', '.join(bad)}")
        return targets


class SlaPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    warnings: list[int] = [50, 75, 90]
    at_risk_percent: int = Field(
        75,
        ge=1,
        le=99,
        description="A stage past a warning of at least this "
        "percentage is at risk (gauges, team-overload counts) until met or breached.",
    )
    escalation_step: int = Field(50, ge=1, le=1000)
    escalation_max_tier: int = Field(3, ge=0, le=3)
    """The top tier (3: management, DOMAIN §6); automatic and people's escalations stop there."""
    stages: dict[str, StagePolicy] = Field(min_length=1)

    @field_validator("warnings")
    @classmethod
    def _percents(cls, warnings: list[int]) -> list[int]:
        if any(not 0 < w < 100 for w in warnings) or len(set(warnings)) != len(warnings):
            raise ValueError("warnings must be distinct percentages between 1 and 99")
        return sorted(warnings)

    @model_validator(mode="after")
    def _names(self) -> SlaPolicy:
        bad = [n for n in self.stages if not n.replace("_", "").isalnum() or ":" in n]
        if bad:
            raise ValueError(f"stage names must be letters, digits and '_': {bad}")
        return self


def load_policy(path: str | Path | None = None) -> SlaPolicy:
    return load_model(SlaPolicy, path, "sla_policy.toml")
