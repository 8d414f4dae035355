"""The worker's Kafka consumer: Faust's own, except that it never acknowledges a skipped message.

Faust's stream skips a message that reaches an agent while a rebalance is under way (flow control
suspended, or the message fetched in an earlier consumer generation) and acknowledges it all the
same (`faust.streams.Stream.__aiter__`), so the next commit passes over a message that no agent
processed. A worker restarted under a backlog of 20,000 events lost the rest of two partitions
that way, thousands of messages, while `ticketstream lag` showed them consumed
(tests/test_chaos.py). Here such an acknowledgement is refused: the offset stays uncommitted,
and the message is fetched again: by the seek to the committed offsets that ends every
rebalance, or by a seek back to it when that seek had already happened (a message of the
previous generation can still be on its way into a stream buffer after it). A
message that was processed but acknowledged only after a rebalance began is processed a second
time, which every agent tolerates (at-least-once: intake de-duplicates, the others are
idempotent by ticket and event id).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from faust.transport.drivers import aiokafka
from faust.types.tuples import ack_lock

log = logging.getLogger(__name__)


class Consumer(aiokafka.Consumer):
    _lowest_refused: dict[Any, tuple[int, int]] = {}
    """Per partition: (consumer generation, lowest offset whose ack was refused in it), where the
    partition was (or is being) sought back to. One entry per partition, replaced each generation."""
    _refetches: set[asyncio.Future[None]] = set()

    def ack(self, message: Any) -> bool:
        app = self.app
        with ack_lock:
            stale = message.generation_id != app.consumer_generation_id or not app.flow_control.is_active()
            if stale and not message.acked and app.topics.acks_enabled_for(message.topic):
                # Not acked, not waited for: a rebalance must not block on it, and its offset is
                # not committed. It is fetched again: by the seek that ends the rebalance, or by
                # the seek back below when that seek has already happened.
                message.acked = True
                self._unacked_messages.discard(message)
                self._refetch(message.tp, message.offset, app.consumer_generation_id)
                return False
            return bool(super().ack(message))

    def _refetch(self, tp: Any, offset: int, generation: int) -> None:
        """Seek `tp` back to `offset` unless a seek to an earlier offset of this generation was
        already made: that one fetches this message again too. One seek per refused message would
        leave the partition at the *last* one and pass over the earlier refused messages."""
        held = self._lowest_refused.get(tp)
        if held is not None and held[0] == generation and held[1] <= offset:
            return
        if held is None or held[0] != generation:
            log.info(  # once per partition and generation: a backlog can be thousands
                "refused the ack of %s offset %d (skipped during a rebalance): fetching it again", tp, offset
            )
        target = (generation, offset)
        self._lowest_refused[tp] = target

        async def seek() -> None:
            try:
                if tp in self.assignment() and self._lowest_refused.get(tp) == target:
                    await self.seek(tp, offset)
            except Exception as exc:  # noqa: BLE001 - moved away meanwhile: its owner starts at the committed offset
                log.info("no re-fetch of %s from %d: %s", tp, offset, type(exc).__name__)

        task = asyncio.ensure_future(seek())
        self._refetches.add(task)
        task.add_done_callback(self._refetches.discard)


class Transport(aiokafka.Transport):
    Consumer = Consumer


class App(faust.App):
    """A Faust app whose consumer is `Consumer` above (the producer is Faust's unchanged)."""

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)
