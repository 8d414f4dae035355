"""The records a worker publishes for archive consumers, made offline with the workers' own core.

`feed(n)` simulates `n` complaints with their whole life (ticketstream.simulation), triages them
with the workers' TriageEngine, runs their SLA clocks with the SlaEngine, and after every event
renders the ticket with `ticket_view` — exactly the code path of the ticket agent that publishes
`tickets.state`. It returns the messages of the four topics the archiver reads. Producing them
straight to the broker tests the archiver at scale in seconds, where driving 100,000 events
through a worker would take minutes on two cores; the contract between the real worker and the
archiver is tested separately with a few tickets (test_archive_pipeline).

The SLA clocks cost about 7 ms per ticket life here, so `feed` computes `templates` distinct
lives and, beyond that, clones them under new ticket ids (every id of a ticket — events, SLA
events — contains its ticket id, so renaming the prefix keeps each clone consistent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache

from ticketstream.schemas.events import Event, EventType, RegradedData
from ticketstream.schemas.tickets import TRIAGED
from ticketstream.settings import Settings
from ticketstream.simulation import Shares, Simulator
from ticketstream.sla.calendar import WorkCalendar, load_overrides
from ticketstream.sla.engine import SLA_EVENT, SlaEngine, TicketSla, epoch
from ticketstream.sla.policy import load_policy
from ticketstream.tickets.view import ticket_view
from ticketstream.topology import ACCEPTED, SLA_EVENTS, STATE


@dataclass
class Feed:
    """Messages per logical topic, as (key, value) pairs in publish order, and the truth."""

    messages: dict[str, list[tuple[bytes, bytes]]] = field(
        default_factory=lambda: {STATE: [], ACCEPTED: [], SLA_EVENTS: []}
    )
    final: dict[str, dict] = field(default_factory=dict)
    """The last published state of every ticket (what the archive must end up with)."""
    event_ids: set[str] = field(default_factory=set)
    sla_ids: set[str] = field(default_factory=set)

    def total(self) -> int:
        return sum(len(v) for v in self.messages.values())


@lru_cache(maxsize=4)
def feed(tickets: int, seed: int = 7, templates: int = 400) -> Feed:
    """Records of `tickets` ticket lives: `templates` simulated ones, cloned up to `tickets`."""
    base = _lives(min(tickets, templates), seed)
    if tickets <= templates:
        return base
    out = Feed()
    prefix = f"AF{seed}-".encode()
    for clone in range(-(-tickets // templates)):
        count = min(templates, tickets - clone * templates)
        if count <= 0:
            break
        wanted = {f"AF{seed}-{i + 1:08d}" for i in range(count)}
        new = f"AF{seed}C{clone}-".encode()

        def rename(data: bytes) -> bytes:
            return data if clone == 0 else data.replace(prefix, new)

        for topic, messages in base.messages.items():
            out.messages[topic].extend((rename(k), rename(v)) for k, v in messages if k.decode() in wanted)
        for tid in sorted(wanted):
            final = json.loads(rename(json.dumps(base.final[tid], ensure_ascii=False).encode()))
            out.final[final["ticket_id"]] = final
    for topic in (ACCEPTED, SLA_EVENTS):
        key = "event_id" if topic == ACCEPTED else "id"
        ids = out.event_ids if topic == ACCEPTED else out.sla_ids
        ids.update(json.loads(v)[key] for _, v in out.messages[topic])
    return out


def _lives(tickets: int, seed: int, states_per_ticket: int | None = None) -> Feed:
    """`states_per_ticket`: publish only the last N states of each ticket (None: all of them)."""
    from ticketstream.workers.app import triage_engine

    engine = triage_engine(Settings())
    sla = SlaEngine(load_policy(), WorkCalendar(load_overrides()))
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    sim = Simulator(
        start,
        rate=tickets / 3600,
        seed=seed,
        time_scale=1.0,
        shares=Shares(malformed=0, duplicate=0, out_of_order=0, late=0),
        id_prefix=f"AF{seed}",
    )
    out = Feed()
    histories: dict = {}
    for index in range(tickets):
        received = sim.complaint(index * 3600 / tickets)
        lifecycle = [e for _, e in sim._lifecycle(received, index * 3600 / tickets)]  # noqa: SLF001
        state = TicketSla(received["ticket_id"])
        record = None
        views = []
        for raw in [received, *lifecycle]:
            event = Event.model_validate(raw)
            at = epoch(event.occurred_at)
            fired = sla.advance(state, at, strict=True)
            if event.type is EventType.COMPLAINT_RECEIVED:
                customer = event.complaint.customer.id
                record, histories[customer] = engine.triage(event, histories.get(customer, []))
                fired += sla.received(state, at, record.grade, at)
            elif event.type is EventType.REGRADED and isinstance(event.data, RegradedData) and record is not None:
                record = engine.retriage(record, grade=event.data.grade, note=f"regraded {event.data.grade.value}")
                fired += sla.regrade(state, record.grade, at)
            else:
                fired += sla.fact(state, event.type.value, at, event.event_id, at)
            body = json.dumps(raw, ensure_ascii=False).encode()
            out.messages[ACCEPTED].append((event.ticket_id.encode(), body))
            out.event_ids.add(event.event_id)
            for sla_event in fired:
                sla_event = replace(sla_event, team=record.team.value if record else None)
                out.messages[SLA_EVENTS].append((event.ticket_id.encode(), SLA_EVENT.dump_json(sla_event)))
                out.sla_ids.add(sla_event.id)
            view = ticket_view(TRIAGED.dump_python(record, mode="json") if record else None, state, sla)
            views.append(view)
        for view in views[-states_per_ticket:] if states_per_ticket else views:
            out.messages[STATE].append((view["ticket_id"].encode(), json.dumps(view, ensure_ascii=False).encode()))
        out.final[views[-1]["ticket_id"]] = views[-1]
    return out
