"""Grading (分級): content signals first, then modifiers that never lower a grade (DOMAIN §3).

L1 重大 > L2 緊急 > L3 一般 > L4 輕微. The rules live in `data/grading.toml`. Every decision
carries its reasons (which signal or modifier fired, with the evidence), so a person can audit
why a ticket got its grade.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import Category, Channel, Grade, Tier
from ticketstream.policyfile import load_model

SEVERITY = {Grade.L1: 1, Grade.L2: 2, Grade.L3: 3, Grade.L4: 4}
BY_SEVERITY = {v: k for k, v in SEVERITY.items()}


def more_severe(a: Grade, b: Grade) -> Grade:
    return a if SEVERITY[a] <= SEVERITY[b] else b


def raise_by(grade: Grade, steps: int, cap: Grade = Grade.L1) -> Grade:
    """`grade` made `steps` more severe, but not beyond `cap` (and never less severe than before)."""
    target = BY_SEVERITY[max(SEVERITY[grade] - steps, SEVERITY[cap], 1)]
    return more_severe(grade, target)


class Signal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grade: Grade
    label: str
    phrases: list[str] = Field(min_length=1)
    only_when_category: Category | None = None


class ContentRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_grade: Grade = Grade.L3
    major_loss_yuan: float = Field(5000, gt=0)
    mass_affected_users: int = Field(20, ge=2)
    loss_context: list[str] = []


class Modifiers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    regulator_channels: list[Channel] = [Channel.MIIT, Channel.GOV_12345, Channel.CONSUMER_12315]
    regulator_min_grade: Grade = Grade.L2
    priority_tiers: list[Tier] = [Tier.VIP, Tier.ENTERPRISE]
    priority_steps: int = Field(1, ge=0, le=3)
    priority_cap: Grade = Grade.L2
    repeat_min_earlier: int = Field(2, ge=1)
    repeat_window_days: int = Field(30, ge=1)
    repeat_steps: int = Field(1, ge=0, le=3)
    incident_min_grade: Grade = Grade.L2


class GradingRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: ContentRules = ContentRules()
    signals: dict[str, Signal]
    modifiers: Modifiers = Modifiers()


def load_rules(path: str | Path | None = None) -> GradingRules:
    return load_model(GradingRules, path, "grading.toml")


_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10_000}
_AMOUNT_RE = re.compile(
    r"(\d+(?:\.\d+)?|[零〇一二两三四五六七八九十百千万几]+)\s*(万|千|k)?\s*多?\s*(?:元|块|塊|rmb|人民币)"
)


def _chinese_number(text: str) -> float:
    """一万 -> 10000, 八千多 -> 8000, 两百 -> 200, 几百 -> 300 (几 read as a cautious 3)."""
    total, section, digit = 0, 0, 0
    for char in text:
        if char in _CN_DIGITS:
            digit = _CN_DIGITS[char]
        elif char == "几":
            digit = 3
        elif char in _CN_UNITS:
            unit = _CN_UNITS[char]
            if unit == 10_000:
                total += (section + digit) * unit
                section, digit = 0, 0
            else:
                section += (digit or 1) * unit
                digit = 0
    return float(total + section + digit)


def amounts_in(text: str) -> list[float]:
    """Yuan amounts written in a (normalised) complaint: 6000多块, 一万多元, 2万块, 300元."""
    found = []
    for number, unit, in _AMOUNT_RE.findall(text):
        value = float(number) if number[0].isdigit() else _chinese_number(number)
        if unit == "万":
            value *= 10_000
        elif unit in ("千", "k"):
            value *= 1_000
        found.append(value)
    return found


@dataclass(frozen=True, slots=True)
class GradeDecision:
    grade: Grade
    content_grade: Grade
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GradeInputs:
    """What grading looks at besides the text's signals."""

    category: Category
    channel: Channel
    tier: Tier
    earlier_same_category: int = 0
    incident_id: str | None = None
    affected_users: int | None = None
    amount_yuan: float | None = None
    manual_triage: bool = False
    """The category is a fallback, not a finding: category-bound signals (an enquiry) do not apply."""


class Grader:
    """Turns fired signals and the ticket's context into a grade with reasons."""

    def __init__(self, rules: GradingRules | None = None) -> None:
        self.rules = rules or load_rules()

    def signal_phrases(self) -> list[tuple[str, str]]:
        """(phrase, signal name) pairs, for the shared phrase matcher."""
        return [(p, name) for name, sig in self.rules.signals.items() for p in sig.phrases]

    def grade(self, normalized_text: str, fired: dict[str, list[str]], inputs: GradeInputs) -> GradeDecision:
        """`fired` maps signal names to the phrases found for them in `normalized_text`."""
        rules, content = self.rules, self.rules.content
        default = content.default_grade
        grade = default
        reasons: list[str] = []
        milder: list[str] = []
        for name, phrases in fired.items():
            signal = rules.signals[name]
            if signal.only_when_category is not None and (
                    inputs.manual_triage or signal.only_when_category != inputs.category):
                continue
            if SEVERITY[signal.grade] > SEVERITY[default]:
                milder.append(name)  # e.g. an enquiry: it counts only if nothing severe fired
                continue
            grade = more_severe(grade, signal.grade)
            reasons.append(f"content:{name} {signal.grade.value} ({'、'.join(phrases[:3])})")
        loss = inputs.amount_yuan or 0.0
        if any(word in normalized_text for word in content.loss_context):
            loss = max([loss, *amounts_in(normalized_text)])
        if loss >= content.major_loss_yuan:
            grade = Grade.L1
            reasons.append(f"content:major_loss L1 ({loss:.0f} yuan >= {content.major_loss_yuan:.0f})")
        if inputs.affected_users and inputs.affected_users >= content.mass_affected_users:
            grade = Grade.L1
            reasons.append(f"content:mass_affected L1 ({inputs.affected_users} users affected)")
        if not reasons and milder:
            name = milder[0]
            grade = rules.signals[name].grade
            reasons.append(f"content:{name} {grade.value} ({'、'.join(fired[name][:3])})")
        content_grade = grade
        mods = rules.modifiers
        if inputs.channel in mods.regulator_channels:
            new = more_severe(grade, mods.regulator_min_grade)
            reasons.append(f"modifier:regulator_channel {inputs.channel.value} -> at least {mods.regulator_min_grade.value}")
            grade = new
        if inputs.tier in mods.priority_tiers and mods.priority_steps:
            new = raise_by(grade, mods.priority_steps, cap=more_severe(mods.priority_cap, content_grade))
            if new != grade:
                reasons.append(f"modifier:priority_customer {inputs.tier.value} {grade.value}->{new.value}")
            grade = new
        if inputs.earlier_same_category >= mods.repeat_min_earlier and mods.repeat_steps:
            new = raise_by(grade, mods.repeat_steps)
            reasons.append(f"modifier:repeat_complaint {inputs.earlier_same_category} earlier in "
                           f"{mods.repeat_window_days} days {grade.value}->{new.value}")
            grade = new
        if inputs.incident_id:
            new = more_severe(grade, mods.incident_min_grade)
            reasons.append(f"modifier:mass_incident {inputs.incident_id} -> at least {mods.incident_min_grade.value}")
            grade = new
        if not reasons:
            reasons.append(f"default {grade.value}: no severity signal")
        return GradeDecision(grade, content_grade, tuple(reasons))
