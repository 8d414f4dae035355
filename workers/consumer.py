"""The worker's Kafka consumer: Faust's own, except that it never acknowledges a skipped message.

Faust's stream skips a message that reaches an agent while a rebalance is under way (flow control
suspended, or the message fetched in an earlier consumer generation) and acknowledges it all the
same (`faust.streams.Stream.__aiter__`), so the next commit passes over a message that no agent
processed. A worker restarted under a backlog of 20,000 events lost the rest of two partitions
that way, thousands of messages, while `ticketstream lag` showed them consumed
(tests/test_chaos.py). Here such an acknowledgement is refused: the offset stays uncommitted,
and the seek to the committed offsets that ends every rebalance fetches the message again. A
message that was processed but acknowledged only after a rebalance began is processed a second
time, which every agent tolerates (at-least-once: intake de-duplicates, the others are
idempotent by ticket and event id). For that seek to reach every skipped message, a partition
that has no committed offset yet is sought to its beginning rather than left where it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.drivers import aiokafka
from faust.types.tuples import ack_lock


class Consumer(aiokafka.Consumer):
    def ack(self, message: Any) -> bool:
        app = self.app
        with ack_lock:
            stale = message.generation_id != app.consumer_generation_id or not app.flow_control.is_active()
            if stale and not message.acked and app.topics.acks_enabled_for(message.topic):
                # Not acked, not waited for: a rebalance must not block on it, and its offset is
                # not committed, so the message is fetched again after the rebalance.
                message.acked = True
                self._unacked_messages.discard(message)
                return False
            return bool(super().ack(message))

    async def seek_to_committed(self) -> Mapping[Any, int]:
        """Faust seeks the stream partitions to their committed offsets after each rebalance, but
        a partition without a committed offset is left where its fetch had got to: a message
        skipped there would never be fetched again. Such partitions start over from the
        beginning instead (the group's `auto_offset_reset`, earliest); table changelogs, which
        are not committed, are left alone."""
        committed = await super().seek_to_committed()
        fresh = [tp for tp, offset in committed.items() if not offset and self.app.topics.acks_enabled_for(tp.topic)]
        if fresh:
            await self._thread.seek_to_beginning(*fresh)
        return committed


class Transport(aiokafka.Transport):
    Consumer = Consumer


class App(faust.App):
    """A Faust app whose consumer is `Consumer` above (the producer is Faust's unchanged)."""

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)
