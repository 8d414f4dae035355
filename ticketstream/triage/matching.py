"""Finding many phrases in short texts, fast: the shared engine of classifier and grader rules.

A complaint is tens to hundreds of characters and the rule sets hold about 1,400 phrases. An
Aho-Corasick automaton (pyahocorasick, C) finds every occurrence of every phrase in one pass;
what remains in Python is choosing among overlapping occurrences.

Overlapping matches follow the longest-match rule: a phrase found inside a longer phrase's
span is dropped (補卡 is not also 卡; 態度太差 is not also 態度), so a short generic phrase never
adds evidence where a specific one already speaks. Several rule sets can share one pass: each
phrase belongs to a group (e.g. classifier, grader) and the rule applies within a group only.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

import ahocorasick

from ticketstream.triage.text import normalize

T = TypeVar("T")


class PhraseMatcher(Generic[T]):
    """All maximal occurrences of a set of phrases (normalised like the text), with payloads."""

    def __init__(self, phrases: Iterable[tuple[str, T]], group: Callable[[T], Hashable] = lambda _: 0) -> None:
        entries: dict[str, list[tuple[T, Hashable]]] = {}
        added: set[tuple[str, object]] = set()
        for phrase, payload in phrases:
            norm = normalize(phrase).strip()
            if len(norm) < len(phrase.strip()) and len(norm) < 2:
                continue  # 太慢 -> 慢: the phrase was mostly an intensifier; one character says nothing
            if not norm or (norm, payload) in added:
                continue  # 網速很慢 and 網速慢 are one phrase after normalisation: count it once
            added.add((norm, payload))
            entries.setdefault(norm, []).append((payload, group(payload)))
        self._automaton = ahocorasick.Automaton()
        for order, (norm, items) in enumerate(entries.items()):
            self._automaton.add_word(norm, (order, norm, tuple(items)))
        if entries:
            self._automaton.make_automaton()
        self._empty = not entries

    def find(self, text: str) -> list[tuple[str, T]]:
        """(phrase, payload) of every maximal phrase occurrence in already-normalised `text`.

        Occurrences are taken ordered by (start, longest first, rule order); one ending at or
        before the furthest end already kept in its group lies inside a kept span and is
        dropped, unless it is that very span (one phrase may carry several payloads). A phrase
        found twice counts once."""
        if self._empty or not text:
            return []
        spans = sorted(
            (end + 1 - len(norm), -len(norm), order, norm, items)
            for end, (order, norm, items) in self._automaton.iter(text)
        )
        reach: dict[Hashable, tuple[int, int]] = {}  # group -> (furthest end, start of that span)
        kept: list[tuple[str, T]] = []
        seen: set[tuple[str, int]] = set()
        for start, negative_length, _, phrase, items in spans:
            end = start - negative_length
            for payload, grp in items:
                far = reach.get(grp)
                if far is None or end > far[0]:
                    reach[grp] = (end, start)
                elif far != (end, start):
                    continue
                key = (phrase, id(payload))
                if key not in seen:
                    seen.add(key)
                    kept.append((phrase, payload))
        return kept
