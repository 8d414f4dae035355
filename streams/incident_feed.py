"""Triage's feed to incident detection (`incidents.by_key`), a city's complaints per record.

Every new complaint counts towards its city's detection (streams/incidents.py), which reads
`incidents.by_key` keyed by city. One record per complaint made the incident agent's input as
large as triage's: one more message consumed by the worker per complaint, with Faust's
per-message delivery, for a few bytes of facts. The feed holds the complaints of each city that
triage took and sends them as one record per city (`by_key_record`, at most `MAX_PER_RECORD`
complaints each) every `FLUSH_SECONDS`, when `MAX_HELD` complaints are held, and before every
commit of the worker's offsets (`streams.commits`). One flush runs at a time: the one before a
commit waits for a flush under way and then sends whatever that one could not, so no offset is
committed before its complaint's entry is with the producer, and a worker that dies loses
nothing (the message is triaged again and its entry sent again, as any redelivered message's
outputs are). Detection sees a complaint about `FLUSH_SECONDS` later while the producer works;
it counts by the complaints' own time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from ticketstream.incidents.detector import by_key_entry, by_key_record
from ticketstream.settings import Settings
from ticketstream.streams.commits import before_commit
from ticketstream.streams.emit import Emitter
from ticketstream.topology import INCIDENTS_BY_KEY

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.25
"""The flush timer's interval: about how long a complaint waits in the feed."""

MAX_HELD = 1000
"""Complaints held before a flush without waiting for the timer (a backlog fills this fast)."""

MAX_PER_RECORD = 500
"""Complaints per record at most (≈ 35 KB), so a city's record stays far below a request's limit
even after flushes failed for a while."""


class IncidentFeed:
    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.emitter = Emitter(app, settings.topic(INCIDENTS_BY_KEY))
        self.held: dict[str, list[dict[str, Any]]] = {}
        self.count = 0
        self._flushing = asyncio.Lock()
        before_commit(app, self.flush)

    async def add(self, city: str, top_level: str, ticket_id: str, at: float) -> None:
        """Hold one new complaint for its city's next record."""
        self.held.setdefault(city, []).append(by_key_entry(top_level, ticket_id, at))
        self.count += 1
        if self.count % MAX_HELD == 0:  # once per MAX_HELD complaints, even while flushes fail
            await self.flush_held()

    async def flush(self) -> None:
        """Hand every held complaint to the producer, one record per city (or several of
        `MAX_PER_RECORD`), after any flush under way. What could not be handed over stays held,
        ahead of what arrived meanwhile, and the error goes on: before a commit it stops the
        commit, and Faust then stops the worker as for any failure of its producer (nothing is
        committed, so the messages are read again wherever their partitions go)."""
        async with self._flushing:
            held, self.held, self.count = self.held, {}, 0
            try:
                while held:
                    city = next(iter(held))
                    entries = held[city]
                    await self.emitter.send(*by_key_record(city, entries[:MAX_PER_RECORD]))
                    del entries[:MAX_PER_RECORD]
                    if not entries:
                        del held[city]
            finally:
                if held:  # not handed over: back in front of what came in meanwhile
                    for city, entries in self.held.items():
                        held.setdefault(city, []).extend(entries)
                    self.held = held
                    self.count = sum(len(entries) for entries in held.values())

    async def flush_held(self) -> None:
        """`flush`, for the timer and a full feed: a failure leaves the complaints held for the
        next flush (the one before a commit stops that commit) instead of failing a message
        whose triage went through."""
        try:
            await self.flush()
        except Exception as exc:  # noqa: BLE001 - retried by the next flush; a commit waits for it
            log.warning("incident feed: %d complaint(s) held for the next flush (%s)", self.count, type(exc).__name__)
