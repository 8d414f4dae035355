"""Classification (分類): one of the twelve categories of DOMAIN §2, with confidence and evidence.

先分類後分級 (003 §2.2.3): the category is decided first, from the words of the complaint alone;
grading comes after. The learned model (`triage_model.py`) decides where it is sure, and its
calibrated probability is the confidence reported. The phrase rules (`data/classifier.toml`:
weighted phrases per category) are the audit evidence, and the answer where the model is unsure.
A complaint that neither can place goes to `other.general` for manual triage with its low
confidence shown, never to a guess presented as certain.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ticketstream.policyfile import load_model
from ticketstream.schemas.events import Category
from ticketstream.triage.matching import PhraseMatcher
from ticketstream.triage.model import Prediction, TriageModel
from ticketstream.triage.text import normalize


class PhraseTiers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strong: list[str] = []
    medium: list[str] = []
    weak: list[str] = []


class ClassifierSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_score: float = Field(2.0, gt=0)
    min_confidence: float = Field(0.34, ge=0, le=1)
    fallback: Category = Category.OTHER_GENERAL
    use_model: bool = Field(
        True,
        description="Let the learned model decide the category (the rules stay the "
        "evidence, and the answer where the model is unsure).",
    )
    model_min_confidence: float = Field(
        0.3,
        ge=0,
        le=1,
        description="The model decides when its calibrated probability is at least this; "
        "below it the rules answer, and without rule evidence the complaint goes to manual triage.",
    )


class Weights(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strong: float = Field(3.0, gt=0)
    medium: float = Field(2.0, gt=0)
    weak: float = Field(1.0, gt=0)
    strongest_bonus: float = Field(
        0.5,
        ge=0,
        description="Each category's strongest phrase counts this much once more, so that "
        "one decisive phrase (骂人, 没到账) outweighs the same sum of context words (师傅, 上门).",
    )


class ClassifierRules(BaseModel):
    """The classifier rule file."""

    model_config = ConfigDict(extra="forbid")

    settings: ClassifierSettings = ClassifierSettings()
    weights: Weights = Weights()
    categories: dict[Category, PhraseTiers]

    @model_validator(mode="after")
    def _every_category_has_phrases(self) -> ClassifierRules:
        empty = [c.value for c, t in self.categories.items() if not (t.strong or t.medium or t.weak)]
        if empty:
            raise ValueError(f"categories without any phrase: {', '.join(empty)}")
        for category, tiers in self.categories.items():
            twice = sorted(p for p, n in Counter([*tiers.strong, *tiers.medium, *tiers.weak]).items() if n > 1)
            if twice:
                raise ValueError(
                    f"{category.value}: listed more than once (which weight is meant?): {', '.join(twice)}"
                )
        return self

    def with_settings(self, **changes: object) -> ClassifierRules:
        """These rules with some `[settings]` changed (e.g. `use_model=False`)."""
        return self.model_copy(update={"settings": self.settings.model_copy(update=changes)})


def load_rules(path: str | Path | None = None) -> ClassifierRules:
    return load_model(ClassifierRules, path, "classifier.toml")


@dataclass(frozen=True, slots=True)
class Classification:
    category: Category
    confidence: float
    evidence: tuple[str, ...]
    scores: dict[str, float] = field(default_factory=dict)
    fallback: bool = False
    by_model: bool = False
    """The learned model decided (else the rules, or the fallback)."""


class Classifier:
    """The learned model decides the category where it is sure; the weighted phrases found in the
    normalised complaint are its audit evidence, and the answer where the model is unsure."""

    def __init__(self, rules: ClassifierRules | None = None, model: TriageModel | None = None) -> None:
        self.rules = rules or load_rules()
        self.model = model
        self._order = {c: i for i, c in enumerate(self.rules.categories)}

    @cached_property
    def _matcher(self) -> PhraseMatcher[tuple[Category, float]]:
        # Built on first `classify`: the triage engine matches these phrases in its own combined
        # pass and only calls `decide`, so a worker never needs this one.
        return PhraseMatcher(self.phrases())

    def phrases(self) -> list[tuple[str, tuple[Category, float]]]:
        """(phrase, (category, weight)) for every rule phrase; a caller may match them together
        with other rules in one pass and hand the hits to `decide`."""
        weights = self.rules.weights
        return [
            (phrase, (category, weight))
            for category, tiers in self.rules.categories.items()
            for tier, weight in (("strong", weights.strong), ("medium", weights.medium), ("weak", weights.weak))
            for phrase in getattr(tiers, tier)
        ]

    def classify(self, text: str, normalized: str | None = None) -> Classification:
        norm = normalized if normalized is not None else normalize(text)
        return self.decide(self._matcher.find(norm), norm)

    def decide(
        self,
        hits: Iterable[tuple[str, tuple[Category, float]]],
        normalized: str | None = None,
        opinion: Prediction | None = None,
    ) -> Classification:
        """The classification from the phrases found (each with its category and weight) and the
        model's opinion (given, or asked here when the normalised text is given)."""
        hits = list(hits)
        by_rules = self._by_rules(hits)
        if opinion is None and self.model is not None and normalized is not None:
            opinion = self.model.predict("category", normalized)
        if opinion is None or not self.rules.settings.use_model:
            return by_rules
        category = Category(opinion.label)
        probability = round(opinion.probability, 3)
        model_evidence = f"model {probability:.2f} ({', '.join(opinion.grams) or 'no known words'})"
        if opinion.probability >= self.rules.settings.model_min_confidence:
            phrases = tuple(p for p, (c, _) in hits if c is category)
            return Classification(category, probability, (*phrases, model_evidence), by_rules.scores, by_model=True)
        if by_rules.fallback:
            return Classification(by_rules.category, probability, (model_evidence,), by_rules.scores, fallback=True)
        # The model is unsure: the rules answer, and the confidence reported is the model's
        # (calibrated) probability of their category, not the rules' own share of the scores.
        agreeing = opinion.probability_of(by_rules.category.value)
        return Classification(
            by_rules.category, round(agreeing, 3), (*by_rules.evidence, model_evidence), by_rules.scores
        )

    def _by_rules(self, hits: Iterable[tuple[str, tuple[Category, float]]]) -> Classification:
        sums: dict[Category, float] = {}
        strongest: dict[Category, float] = {}
        evidence: dict[Category, list[str]] = {}
        for phrase, (category, weight) in hits:
            sums[category] = sums.get(category, 0.0) + weight
            strongest[category] = max(strongest.get(category, 0.0), weight)
            evidence.setdefault(category, []).append(phrase)
        settings = self.rules.settings
        if not sums:
            return Classification(settings.fallback, 0.0, (), {}, fallback=True)
        bonus = self.rules.weights.strongest_bonus
        scores = {c: sums[c] + bonus * strongest[c] for c in sums}
        ranked = sorted(scores, key=lambda c: (-scores[c], self._order[c]))
        best = ranked[0]
        runner_up = scores[ranked[1]] if len(ranked) > 1 else 0.0
        # The winner's share of the two leading scores: 1.0 when nothing competes, 0.5 on a tie.
        confidence = round(scores[best] / (scores[best] + runner_up), 3)
        shown = {c.value: scores[c] for c in ranked}
        if sums[best] < settings.min_score or confidence < settings.min_confidence:
            return Classification(settings.fallback, confidence, tuple(evidence[best]), shown, fallback=True)
        return Classification(best, confidence, tuple(evidence[best]), shown)
