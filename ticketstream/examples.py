"""Second opinion from labelled examples (範例): naive Bayes over character bigrams.

Phrase rules say exactly why a complaint got its category, but customers keep finding words no
rule lists: on complaints written after the rules (not used to tune them) the rules alone
placed about 70 % right, and most misses were fallbacks for lack of evidence or ties. When the
rules fall back, this model compares the complaint with labelled example complaints
(`data/classifier_examples.jsonl`, replaceable by the operator) and proposes the category whose
examples share its character pairs; the classifier takes it only above a posterior threshold,
and records it as similarity evidence, so a person auditing the ticket sees it was not a rule.

Chinese needs no word segmentation for this: character pairs of the normalised text (one
script, no intensifiers, no punctuation) carry most of the vocabulary.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.events import Category
from ticketstream.policyfile import DATA_DIR, PolicyError
from ticketstream.text import normalize

SMOOTHING = 0.5
"""Additive smoothing of a character pair's frequency per category."""


class Example(BaseModel):
    """One labelled complaint: what a customer wrote and the category a person gave it."""

    model_config = ConfigDict(extra="ignore")

    content: str = Field(min_length=1)
    category: Category


def load_examples(path: str | Path | None = None) -> list[Example]:
    """Read JSON lines of examples (the shipped file when `path` is None), or raise PolicyError
    naming the file and line."""
    source = Path(path) if path else DATA_DIR / "classifier_examples.jsonl"
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise PolicyError(f"{source}: no such file") from None
    examples = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            examples.append(Example.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise PolicyError(f"{source}: line {number}: {str(exc).splitlines()[0]}") from None
    if not examples:
        raise PolicyError(f"{source}: no examples")
    return examples


def pairs(normalized: str) -> set[str]:
    """The distinct character pairs of normalised text, punctuation and spaces left out."""
    text = "".join(ch for ch in normalized if ch.isalnum())
    return {text[i:i + 2] for i in range(len(text) - 1)}


@dataclass(frozen=True, slots=True)
class Opinion:
    category: Category
    posterior: float
    pairs: tuple[str, ...]
    """The pairs that spoke most for the category against the runner-up."""


class ExampleModel:
    """Naive Bayes over the set of character pairs a text contains (absent pairs are not counted),
    learned from examples."""

    def __init__(self, examples: Iterable[Example]) -> None:
        docs: Counter[Category] = Counter()
        counts: dict[Category, Counter[str]] = {}
        for example in examples:
            docs[example.category] += 1
            counts.setdefault(example.category, Counter()).update(pairs(normalize(example.content)))
        total = sum(docs.values())
        self.categories: tuple[Category, ...] = tuple(docs)
        self._prior = [math.log(docs[c] / total) for c in self.categories]
        vocabulary = set().union(*counts.values()) if counts else set()
        # Per pair, its log-likelihood in each category (same order as `categories`).
        self._loglik: dict[str, tuple[float, ...]] = {
            pair: tuple(math.log((counts[c][pair] + SMOOTHING) / (docs[c] + 1)) for c in self.categories)
            for pair in vocabulary
        }

    def opinion(self, normalized: str) -> Opinion | None:
        """The most likely category with its posterior, or None when no known pair occurs."""
        known = sorted(p for p in pairs(normalized) if p in self._loglik)  # a fixed summation order
        if not known or len(self.categories) < 2:
            return None
        scores = [prior + sum(column) for prior, column in zip(self._prior, zip(*(self._loglik[p] for p in known)))]
        ranked = sorted(range(len(scores)), key=lambda i: -scores[i])
        best, runner = ranked[0], ranked[1]
        top = scores[best]
        posterior = 1.0 / sum(math.exp(s - top) for s in scores)
        telling = sorted(known, key=lambda p: (self._loglik[p][runner] - self._loglik[p][best], p))[:4]
        return Opinion(self.categories[best], posterior, tuple(telling))
