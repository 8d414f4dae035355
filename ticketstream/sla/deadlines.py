"""The deadline index: which tickets have something due, without scanning every open ticket.

A heap of (instant, ticket id) with lazy invalidation: `schedule` records a ticket's next due
instant (replacing any earlier entry logically; stale heap entries are skipped when popped), and
`pop_due(now)` returns the tickets whose next instant has come. A worker keeps one index for
the partitions it owns and rebuilds it from its ticket table on assignment; a short timer pops
what is due. Memory: one heap entry and one dict entry per ticket with a pending threshold.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


class DeadlineIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._next: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._next)

    def schedule(self, ticket_id: str, at: float | None) -> None:
        """Set the ticket's next due instant (None: nothing pending, forget it)."""
        if at is None:
            self._next.pop(ticket_id, None)
            return
        if self._next.get(ticket_id) == at:
            return
        self._next[ticket_id] = at
        heapq.heappush(self._heap, (at, ticket_id))

    def load(self, entries: Iterable[tuple[str, float | None]]) -> None:
        """Replace the whole index (a rebuild): one heapify instead of a push per ticket."""
        self._next = {ticket_id: at for ticket_id, at in entries if at is not None}
        self._heap = [(at, ticket_id) for ticket_id, at in self._next.items()]
        heapq.heapify(self._heap)

    def peek(self) -> float | None:
        """The earliest pending instant (skipping stale entries)."""
        heap = self._heap
        while heap and self._next.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[str]:
        """Tickets whose next instant is at or before `now`; they leave the index until rescheduled."""
        due = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, ticket_id = heapq.heappop(heap)
            if self._next.get(ticket_id) == at:
                del self._next[ticket_id]
                due.append(ticket_id)
        return due
