"""The deadline-index rebuild after a rebalance yields to the event loop while it reads the table
(the web port and timers share that loop) and keeps what is scheduled meanwhile."""

import asyncio
import contextlib
from typing import Any

from ticketstream.sla.deadlines import DeadlineIndex
from ticketstream.streams import tickets
from ticketstream.streams.tickets import TicketAgent


class _Table:
    """A memory-store table as `streams.tables.entries` reads it."""

    def __init__(self, rows: dict[str, dict[str, Any]]) -> None:
        self.data = rows

    def items(self) -> Any:
        return self.data.items()


def _agent(rows: dict[str, dict[str, Any]]) -> TicketAgent:
    agent = TicketAgent.__new__(TicketAgent)  # the rebuild needs only the table and the index
    agent.table, agent.index, agent._rebuilds = _Table(rows), DeadlineIndex(), 0
    return agent


def _rows(n: int) -> dict[str, dict[str, Any]]:
    return {f"T-{i}": {"next": 1_000.0 + i, "open": ["frontline", "L2"]} for i in range(n)}


def test_the_rebuild_lets_other_tasks_run_and_keeps_what_they_schedule():
    n = 5 * tickets.REBUILD_SLICE
    agent = _agent(_rows(n))
    agent.index.schedule("T-gone", 1.0)  # the old index: replaced

    async def run() -> tuple[int, int]:
        turns = 0

        async def other() -> None:  # the web port, a timer, the agent: each turn schedules or clears a ticket
            nonlocal turns
            while True:
                turns += 1
                if turns == 1:
                    agent.table.data["T-new"] = {"next": 5.0}
                    agent.index.schedule("T-new", 5.0)  # saved and scheduled after the pass began
                    agent.index.schedule("T-0", None)  # its last threshold fired: nothing pending
                await asyncio.sleep(0)

        task = asyncio.ensure_future(other())
        count = await agent.rebuild_index()
        task.cancel()
        return count, turns

    count, turns = asyncio.run(run())
    assert turns >= n // tickets.REBUILD_SLICE - 1  # the loop turned between the slices
    assert count == n  # T-new in, T-0 out, T-gone dropped with the old index
    assert agent.index.pop_due(5.0) == ["T-new"]
    assert agent.index.pop_due(1_000.5) == []  # T-0 stays cleared
    assert agent.index.pop_due(1_001.0) == ["T-1"]


def test_a_rebuild_overtaken_by_a_newer_one_leaves_the_index_to_it():
    agent = _agent(_rows(3 * tickets.REBUILD_SLICE))

    async def run() -> tuple[int, int]:
        first = asyncio.ensure_future(agent.rebuild_index())
        await asyncio.sleep(0)  # the first has read a slice and yielded
        agent.table.data = {"T-only": {"next": 7.0}}  # the next rebalance left one ticket here
        second = await agent.rebuild_index()
        return await first, second

    first, second = asyncio.run(run())
    assert first == -1 and second == 1
    assert agent.index.pop_due(10_000.0) == ["T-only"]


def test_a_cancelled_rebuild_stops_remembering_schedules():
    """Faust cancels the signal's handlers when a new rebalance starts during recovery."""
    agent = _agent(_rows(3 * tickets.REBUILD_SLICE))
    agent.index.schedule("T-old", 9.0)

    async def run() -> None:
        rebuild = asyncio.ensure_future(agent.rebuild_index())
        await asyncio.sleep(0)  # it has read a slice and yielded
        rebuild.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rebuild

    asyncio.run(run())
    assert agent.index._during_load is None  # noqa: SLF001 - what the next load would have merged
    assert agent.index.pop_due(10.0) == ["T-old"]  # the old index stays until a rebuild completes
