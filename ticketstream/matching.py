"""Finding many phrases in short texts, fast: the shared engine of classifier and grader rules.

A complaint is tens to hundreds of characters and a rule set has hundreds of phrases. A regex
alternation tries every phrase at every position; this matcher looks up the two characters at
each position in an index of phrase beginnings and tests only those phrases.

Overlapping matches follow the longest-match rule: a phrase found inside a longer phrase's
span is dropped (補卡 is not also 卡; 態度太差 is not also 態度), so a short generic phrase never
adds evidence where a specific one already speaks. Several rule sets can share one pass: each
phrase belongs to a group (e.g. classifier, grader) and the rule applies within a group only.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

from ticketstream.text import normalize

T = TypeVar("T")


class PhraseMatcher(Generic[T]):
    """All maximal occurrences of a set of phrases (normalised like the text), with payloads."""

    def __init__(self, phrases: Iterable[tuple[str, T]], group: Callable[[T], Hashable] = lambda _: 0) -> None:
        by_bigram: dict[str, list[tuple[str, T, Hashable]]] = {}
        single: dict[str, list[tuple[str, T, Hashable]]] = {}
        added: set[tuple[str, object]] = set()
        for phrase, payload in phrases:
            norm = normalize(phrase).strip()
            if len(norm) < len(phrase.strip()) and len(norm) < 2:
                continue  # 太慢 -> 慢: the phrase was mostly an intensifier; one character says nothing
            if (norm, payload) in added:
                continue  # 網速很慢 and 網速慢 are one phrase after normalisation: count it once
            added.add((norm, payload))
            if len(norm) >= 2:
                by_bigram.setdefault(norm[:2], []).append((norm, payload, group(payload)))
            elif norm:
                single.setdefault(norm, []).append((norm, payload, group(payload)))
        for bucket in by_bigram.values():
            bucket.sort(key=lambda item: -len(item[0]))
        self._bigram = by_bigram
        self._single = single
        # Most characters of a complaint begin no phrase: one set test skips them.
        self._starts = frozenset(k[0] for k in by_bigram) | frozenset(single)

    def find(self, text: str) -> list[tuple[str, T]]:
        """(phrase, payload) of every maximal phrase occurrence in already-normalised `text`.

        Positions are scanned left to right and each bucket is sorted longest first, so the
        spans arrive ordered by (start, -length); a span ending at or before the furthest end
        already kept in its group lies inside a kept span and is dropped, unless it is that very
        span (one phrase may carry several payloads)."""
        bigram, single, starts = self._bigram, self._single, self._starts
        startswith = text.startswith
        reach: dict[Hashable, tuple[int, int]] = {}  # group -> (furthest end, start of that span)
        kept: list[tuple[str, T]] = []
        seen: set[tuple[str, int]] = set()
        for i, ch in enumerate(text):
            if ch not in starts:
                continue
            for bucket in (bigram.get(text[i:i + 2]), single.get(ch)):
                if bucket is None:
                    continue
                for phrase, payload, grp in bucket:
                    if not startswith(phrase, i):
                        continue
                    end = i + len(phrase)
                    far = reach.get(grp)
                    if far is None or end > far[0]:
                        reach[grp] = (end, i)
                    elif far != (end, i):
                        continue
                    key = (phrase, id(payload))
                    if key not in seen:
                        seen.add(key)
                        kept.append((phrase, payload))
        return kept
