"""The deadline index: which tickets have something due, without scanning every open ticket.

A heap of (instant, ticket id) with lazy invalidation: `schedule` records a ticket's next due
instant (replacing any earlier entry logically; stale heap entries are skipped when popped), and
`pop_due(now)` returns the tickets whose next instant has come. A worker keeps one index for
the partitions it owns and rebuilds it from its ticket table on assignment; a short timer pops
what is due. Memory: one heap entry and one dict entry per ticket with a pending threshold.

A rebuild reads the whole table in slices and yields to the event loop between them (a million
tickets take seconds, during which the worker's web port and timers must answer), so tickets can
be scheduled while it reads: `begin_load`
starts remembering those, and `load` lets them win over what the table gave (they are newer).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


class DeadlineIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._next: dict[str, float] = {}
        self._during_load: dict[str, float | None] | None = None
        """Schedules made since `begin_load` (None: no load under way)."""

    def __len__(self) -> int:
        return len(self._next)

    def schedule(self, ticket_id: str, at: float | None) -> None:
        """Set the ticket's next due instant (None: nothing pending, forget it)."""
        if self._during_load is not None:
            self._during_load[ticket_id] = at
        if at is None:
            self._next.pop(ticket_id, None)
            return
        if self._next.get(ticket_id) == at:
            return
        self._next[ticket_id] = at
        heapq.heappush(self._heap, (at, ticket_id))

    def begin_load(self) -> None:
        """A rebuild starts reading the table: remember what is scheduled until its `load`."""
        self._during_load = {}

    def abandon_load(self) -> None:
        """A rebuild that ends without `load` (cancelled by a new rebalance, overtaken, failed):
        stop remembering schedules for it."""
        self._during_load = None

    def load(self, entries: Iterable[tuple[str, float | None]] | dict[str, float]) -> None:
        """Replace the whole index (a rebuild): one heapify instead of a push per ticket. What was
        scheduled since `begin_load` overrides `entries` (the table as read before it). A dict
        of pending instants is taken as it is (no copy of a million entries)."""
        if isinstance(entries, dict):
            fresh = entries
        else:
            fresh = {ticket_id: at for ticket_id, at in entries if at is not None}
        for ticket_id, at in (self._during_load or {}).items():
            if at is None:
                fresh.pop(ticket_id, None)
            else:
                fresh[ticket_id] = at
        self._during_load = None
        self._next = fresh
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
