"""Classification (分類): one of the twelve categories of DOMAIN §2, with confidence and evidence.

先分類後分級 (003 §2.2.3): the category is decided first, from the words of the complaint alone;
grading comes after. Rules are data (`data/classifier.toml`): weighted phrases per category.
A complaint whose evidence is weak, or split between categories, goes to `other.general` for
manual triage with its low confidence shown, never to a guess presented as certain.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.events import Category
from ticketstream.examples import ExampleModel, load_examples
from ticketstream.matching import PhraseMatcher
from ticketstream.policyfile import load_model
from ticketstream.text import normalize


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
    use_examples: bool = Field(True, description="When the rules fall back or are unsure, ask the labelled examples.")
    examples_file: Path | None = Field(None, description="JSON lines of {content, category}; default: shipped.")
    examples_min_posterior: float = Field(
        0.9, gt=0.5, le=1, description="The examples' opinion counts only this sure; otherwise manual triage.")
    examples_confidence: float = Field(
        0.8, gt=0, le=1, description="The most confidence reported for a decision by the examples: naive "
        "Bayes posteriors run high (decisions at >= 0.9 were right 83 % of the time in cross-validation).")
    examples_when_rules_below: float = Field(
        0.6, ge=0, le=1, description="The examples are also asked when the rules decided with less confidence "
        "than this (a near tie between two categories); a sure opinion then decides.")


class Weights(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strong: float = Field(3.0, gt=0)
    medium: float = Field(2.0, gt=0)
    weak: float = Field(1.0, gt=0)
    strongest_bonus: float = Field(
        0.5, ge=0, description="Each category's strongest phrase counts this much once more, so that "
        "one decisive phrase (骂人, 没到账) outweighs the same sum of context words (师傅, 上门).")


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
                raise ValueError(f"{category.value}: listed more than once (which weight is meant?): {', '.join(twice)}")
        return self

    def with_settings(self, **changes: object) -> ClassifierRules:
        """These rules with some `[settings]` changed (e.g. `use_examples=False`)."""
        return self.model_copy(update={"settings": self.settings.model_copy(update=changes)})


def load_rules(path: str | Path | None = None) -> ClassifierRules:
    return load_model(ClassifierRules, path, "classifier.toml")


@cache
def shipped_examples() -> ExampleModel:
    """The model of the shipped examples, learned once per process."""
    return ExampleModel(load_examples())


@dataclass(frozen=True, slots=True)
class Classification:
    category: Category
    confidence: float
    evidence: tuple[str, ...]
    scores: dict[str, float] = field(default_factory=dict)
    fallback: bool = False


class Classifier:
    """Scores every category by the weighted phrases found in the normalised complaint."""

    def __init__(self, rules: ClassifierRules | None = None) -> None:
        self.rules = rules or load_rules()
        settings = self.rules.settings
        self.examples: ExampleModel | None = None
        if settings.use_examples:
            self.examples = (shipped_examples() if settings.examples_file is None
                             else ExampleModel(load_examples(settings.examples_file)))
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

    def decide(self, hits: Iterable[tuple[str, tuple[Category, float]]], normalized: str | None = None
               ) -> Classification:
        """The classification from the phrases found (each with its category and weight); when
        they are not enough and the normalised text is given, the labelled examples' opinion."""
        decided = self._by_rules(hits)
        settings = self.rules.settings
        unsure = decided.fallback or decided.confidence < settings.examples_when_rules_below
        if not unsure or normalized is None or self.examples is None:
            return decided
        opinion = self.examples.opinion(normalized)
        if opinion is None or opinion.posterior < settings.examples_min_posterior or opinion.category is decided.category:
            return decided
        return Classification(opinion.category, round(min(opinion.posterior, settings.examples_confidence), 3),
                              (f"similar to labelled examples ({', '.join(opinion.pairs)})",),
                              decided.scores, fallback=False)

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
