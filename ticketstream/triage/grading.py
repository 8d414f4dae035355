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

from ticketstream.policyfile import load_model
from ticketstream.schemas.events import Category, Channel, Grade, Tier
from ticketstream.triage.model import Prediction

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


class ModelOpinion(BaseModel):
    """How much the learned content-grade head (triage_model.py) may say."""

    model_config = ConfigDict(extra="forbid")

    use: bool = True
    raise_to: Grade = Field(
        Grade.L1,
        description="The most severe grade the model alone may give (L2 keeps L1, "
        "which pages management, with the listed signals).",
    )
    raise_min_probability: float = Field(
        0.5,
        ge=0,
        le=1,
        description="The model makes the grade more severe when "
        "it is this sure (a paraphrased interruption, fault or leak).",
    )
    minor_min_probability: float = Field(
        0.45,
        ge=0,
        le=1,
        description="The model makes a complaint L4 (an enquiry "
        "or suggestion) when no severe signal fired and it is this sure.",
    )
    enquiry_phrase_min_probability: float = Field(
        0.1,
        ge=0,
        le=1,
        description="An enquiry phrase (请问, 建议) makes L4 only when the model gives L4 at least this much.",
    )


class GradingRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: ContentRules = ContentRules()
    model: ModelOpinion = ModelOpinion()
    signals: dict[str, Signal]
    modifiers: Modifiers = Modifiers()


def load_rules(path: str | Path | None = None) -> GradingRules:
    return load_model(GradingRules, path, "grading.toml")


_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "几": 3,
}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_MULTIPLIERS = {"万": 10_000, "w": 10_000, "千": 1_000, "k": 1_000}
_AMOUNT_RE = re.compile(
    r"(?:(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)\s*(?P<mult>万|千|k|w)?(?P<tail>\d(?!\d))?"
    r"|(?P<cn>[零〇一二两三四五六七八九十百千万几]+))"
    r"\s*(?:多|余|来)?\s*(?P<cur>元|块|蚊|rmb|人民币)?(?P<after>.?)"
)
_NOT_MONEY = set("米个次条户人天年月日号分秒小周楼层栋间台部张兆g")
"""A number followed by one of these counts something else (3千米, 5万户, 2k次, 100g)."""
_LOSS_VERB_RE = re.compile(r"(?:扣|收|损失|骗|刷|赔|亏|罚|吞|被盗)(?:了|走|掉|去)?(?:我|我们|我家)?$")
"""A bare number right after a loss verb is an amount even without 元 (扣了我6000)."""
_BARE_MAX = 10_000_000
"""A bare number above this is an account or phone number, not money."""


def chinese_number(text: str) -> int:
    """一万二 -> 12000, 三千五 -> 3500, 两百五 -> 250, 一千零五 -> 1005, 十二万 -> 120000,
    几百 -> 300 (几 read as a cautious 3). A trailing digit after a unit, with no 零 before it,
    counts in the next lower unit, as people say it (一万二 is 12,000, not 10,002)."""
    total, section = 0, 0
    digit: int | None = None
    last_unit = 0
    zero = False
    for char in text:
        if char in _CN_DIGITS:
            digit = _CN_DIGITS[char]
            zero = zero or digit == 0
        elif char in _CN_UNITS:
            unit = _CN_UNITS[char]
            section += (1 if digit is None else digit) * unit
            digit, last_unit, zero = None, unit, False
        elif char == "万":
            total += (section + (digit or 0)) * 10_000 if (section or digit) else 10_000
            section, digit, last_unit, zero = 0, None, 10_000, False
    if digit is not None:
        section += digit * (last_unit // 10) if last_unit and not zero else digit
    return total + section


def amounts_in(text: str) -> list[float]:
    """Yuan amounts written in a normalised complaint, in the forms people use: 300元, 8,600多元,
    6000多块, 5万多, 1.2万, 1万2, 2k, 一万多元, 一万二, 三千五, 扣了我6000. A number that counts
    something else (5万户, 3千米) or is too long to be money without 元 (a phone number) is not one."""
    found = []
    for m in _AMOUNT_RE.finditer(text):
        currency, after = m["cur"], m["after"]
        if not currency and after and after in _NOT_MONEY:
            continue
        if m["num"] is not None:
            value = float(m["num"].replace(",", ""))
            mult = m["mult"]
            if mult:
                value *= _MULTIPLIERS[mult]
                if m["tail"]:
                    value += int(m["tail"]) * _MULTIPLIERS[mult] // 10
            elif not currency and not (value <= _BARE_MAX and _LOSS_VERB_RE.search(text, 0, m.start())):
                continue
        else:
            numeral = m["cn"]
            if not (numeral[0] in _CN_DIGITS or numeral[0] == "十"):
                continue  # 千万 (by all means), 万一 (in case) ...
            if not currency and not any(ch in "千万" for ch in numeral):
                continue  # 三个, 一次, 五十: counts, not money
            value = float(chinese_number(numeral))
        if value > 0:
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
    """The category is a fallback, not a finding: category-bound signals do not apply."""
    model_grade: Prediction | None = None
    """The learned content-grade head's opinion of the text, when a model is loaded."""


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
                inputs.manual_triage or signal.only_when_category != inputs.category
            ):
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
        opinion = inputs.model_grade if rules.model.use else None
        if opinion is not None:
            grade = self._with_model(grade, reasons, milder, fired, opinion)
        elif not reasons and milder:
            name = milder[0]
            grade = rules.signals[name].grade
            reasons.append(f"content:{name} {grade.value} ({'、'.join(fired[name][:3])})")
        content_grade = grade
        mods = rules.modifiers
        if inputs.channel in mods.regulator_channels:
            new = more_severe(grade, mods.regulator_min_grade)
            reasons.append(
                f"modifier:regulator_channel {inputs.channel.value} -> at least {mods.regulator_min_grade.value}"
            )
            grade = new
        if inputs.tier in mods.priority_tiers and mods.priority_steps:
            new = raise_by(grade, mods.priority_steps, cap=more_severe(mods.priority_cap, content_grade))
            if new != grade:
                reasons.append(f"modifier:priority_customer {inputs.tier.value} {grade.value}->{new.value}")
            grade = new
        if inputs.earlier_same_category >= mods.repeat_min_earlier and mods.repeat_steps:
            new = raise_by(grade, mods.repeat_steps)
            reasons.append(
                f"modifier:repeat_complaint {inputs.earlier_same_category} earlier in "
                f"{mods.repeat_window_days} days {grade.value}->{new.value}"
            )
            grade = new
        if inputs.incident_id:
            new = more_severe(grade, mods.incident_min_grade)
            reasons.append(f"modifier:mass_incident {inputs.incident_id} -> at least {mods.incident_min_grade.value}")
            grade = new
        if not reasons:
            reasons.append(f"default {grade.value}: no severity signal")
        return GradeDecision(grade, content_grade, tuple(reasons))

    def _with_model(
        self, grade: Grade, reasons: list[str], milder: list[str], fired: dict[str, list[str]], opinion: Prediction
    ) -> Grade:
        """The content grade with the model's opinion: it may raise an unsignalled complaint up to
        `raise_to` (paraphrased interruptions and faults), and it decides between L3 and L4
        (an enquiry phrase alone does not: angry complaints ask questions too)."""
        policy = self.rules.model
        label = Grade(opinion.label)
        if SEVERITY[label] < SEVERITY[grade] and opinion.probability >= policy.raise_min_probability:
            new = more_severe(grade, BY_SEVERITY[max(SEVERITY[label], SEVERITY[policy.raise_to])])
            if new != grade:
                reasons.append(f"model:{new.value} {opinion.probability:.2f} ({'、'.join(opinion.grams[:3])})")
                return new
        if reasons or grade is not self.rules.content.default_grade:
            return grade
        minor = opinion.probability_of(Grade.L4.value)
        if milder and minor >= policy.enquiry_phrase_min_probability:
            name = milder[0]
            signal = self.rules.signals[name]
            reasons.append(f"content:{name} {signal.grade.value} ({'、'.join(fired[name][:3])}; model L4 {minor:.2f})")
            return signal.grade
        if minor >= policy.minor_min_probability:
            reasons.append(f"model:L4 {minor:.2f} ({'、'.join(opinion.grams[:3])})")
            return Grade.L4
        return grade
