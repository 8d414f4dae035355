"""The worker's Kafka consumer: Faust's own, made to never commit past a message no agent processed.

1. **Never-committed partitions start at their first offset** (`seek_to_committed`). Every
   rebalance ends with Faust seeking the stream partitions to their committed offsets and then
   dropping what its streams had buffered, counting on that seek to fetch it again. aiokafka
   seeks only to a committed offset above 0, so a partition with none (a new group, or a worker
   killed before its first commit) stayed where its fetch had got to while the tables recovered,
   and Faust then committed past everything it had dropped, since with no committed offset it
   does not check the head of the partition. A worker restarted under a backlog of 20,000 events
   lost ranges of thousands of events that way while `ticketstream lag` showed them consumed
   (tests/test_chaos.py). Such partitions are now sought to their first offset, and no commit of
   them passes a message at their start that was not acknowledged (`_new_offset`).

2. **A skipped message is never acknowledged** (`ack`). Faust's pure-Python stream iterator (used
   without its compiled extension, or with `NO_CYTHON=1`) skips a message that reaches an agent
   during a rebalance and acknowledges it all the same; the compiled iterator, used here by
   default, does not. Such an acknowledgement is refused: the offset stays uncommitted and the
   seek that ends the rebalance fetches the message again. A stream marks a message `tracked`
   when it hands it to its agent, and every topic here has one agent, so an untracked message is
   one no agent saw; a message that was processed is acknowledged normally even when its ack
   comes after the rebalance or the stop began. A refused message whose partition was already
   read past it in the same generation (once flow has resumed) is sought back to; the seek only
   ever goes *back*: a seek forward would jump over messages never fetched.

3. **A partition that stops committing is fetched again** (`_watch_stalls`). The last line behind
   1 and 2: a stream partition read past its committed offset whose commit has not moved for
   `STALL_INTERVALS` commit intervals is logged with everything the consumer knows of it (offsets
   only, never a message) and fetched again from the lower of its committed offsets here and on
   the broker, with what it had acknowledged forgotten. Seen once in the chaos test (a worker and
   the coordinator's broker killed under traffic): a partition processed to its end while its
   committed offset stayed where a rebalance had left it, so the group never drained (4 may have
   been its cause). The watch runs on its own timer, not on the commit path. A seek back only:
   what follows is processed again (at-least-once), never skipped.

4. **No batch fetched before the seek to the committed offsets is handed over after it**
   (`seek_to_committed`). That seek ends every rebalance's recovery, and Faust makes it while its
   fetch loop may be handing the agents a batch it fetched before (waiting on a full channel).
   Faust went on with that batch afterwards: its read offset jumped past everything the seek
   fetches again (dropped as already read), and the jump from the committed offset to the next
   stale message was recorded as a hole in the log, which Faust's next commit counts as
   processed. About once in fifteen runs of the restart test messages no agent had seen were
   in such a hole (the commit crawled one offset per interval towards them, through the
   duplicates the hole added to the acknowledgements, and the test timed out first). The fetch
   loop is now stopped first (Faust's own stop, as at the start of every rebalance), and the seek
   waits until it has put its batch down; Faust's recovery resumes it after the seek, as it
   always did, and it fetches from where the seek went. One message may still arrive late: the
   one in hand, if its agent's channel was full (Faust's put into the channel outlives the
   abandoned hand-over); it is fetched again too, so it is processed twice at most, the first
   time possibly ahead of the messages before it. While the loop is stopped Faust drops what it
   fetched for standby changelog partitions, as it does at every rebalance's start.

5. **No commit passes a record that was lost** (`_commit`). The agents' records go into the
   producer's batches without a delivery future each (`streams.emit.send`), and Faust commits
   after flushing the producer, which waits for every batch to be delivered *or to fail*. A batch
   that failed for good (an error the producer does not retry, a partition without a leader past
   the request timeout) would have been committed past, its records lost. The producer's batches
   now remember such a failure (`streams.emit.undelivered`), and the commit after it (or the stall
   watch's timer, within a commit interval, when there is nothing to commit) crashes the worker
   instead: the messages since the last commit are read again and their records made
   again (at-least-once, idempotent effects).

And one speed change: **a message handed over without waiting costs no task** (`wait_first`).
Faust's fetch loop hands each message to its agent's channel racing the hand-over against the
suspension of flow (a rebalance must not wait on a full channel), and mode's `wait_first` makes
four tasks for that race (29 µs a message in isolation). The hand-over is now run to its first
suspension at once (in an eagerly started task from Python 3.12, in place on 3.11); only if it
has to wait (a full channel, flow suspended, the producer's buffer full) does the race run as
before, from where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Coroutine, Generator, Mapping
from typing import Any

import faust
from faust.exceptions import ProducerSendError
from faust.transport.drivers import aiokafka
from faust.types.tuples import ack_lock
from mode import Service
from mode.services import WaitResults

from ticketstream.streams.commits import flush_before_commit
from ticketstream.streams.emit import undelivered

log = logging.getLogger(__name__)

STALL_INTERVALS = 10
"""Commit intervals a partition read past its committed offset may go without committing before
it is fetched again (28 s at the default 2.8 s interval): far above a slow message, far below
what on-call would notice as a stuck consumer group."""


PUT_DOWN_TIMEOUT = 10.0
"""Seconds the seek to the committed offsets waits for the stopped fetch loop to put its batch
down: it does so at its next turn (unless Faust is committing inline, every `commit_every`
messages); the bound only keeps a recovery from hanging on it."""


class ReadOffsets(defaultdict[Any, int | None]):
    """Faust's record of the last offset read per partition, below which its fetch loop drops a
    message as already read. While a partition is fetched again from a head that was read past
    (`rewinding`: partition -> the furthest offset read before), it reports nothing read, so no
    re-fetched message is dropped because a batch fetched before the seek arrived in between;
    messages are then delivered twice at most, never skipped."""

    def __init__(self) -> None:
        super().__init__(lambda: None)
        self.rewinding: dict[Any, int] = {}

    def __getitem__(self, tp: Any) -> int | None:
        return None if tp in self.rewinding else super().__getitem__(tp)


EAGER_TASKS = sys.version_info >= (3, 12)
"""Whether asyncio can run a task's first step at its creation (`eager_start`, Python 3.12)."""


def _close(coros: tuple[Any, ...]) -> None:
    """Close the never-started coroutines of a race that is over (mode cancels its losers)."""
    for coro in coros:
        if asyncio.iscoroutine(coro):
            coro.close()


class _Resumed:
    """An awaitable that goes on with a coroutine already run to its first suspension
    (`Consumer.wait_first` on Python 3.11): it yields what the coroutine yielded there (the
    future it waits on), then relays sends, throws (a cancellation) and its result, as `await`
    on it would have."""

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self._coro, self._yielded
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - relayed into the coroutine, as await does
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


class Consumer(aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset: ReadOffsets = ReadOffsets()
        self._lowest_refused: dict[Any, tuple[int, int]] = {}
        """Per partition: (consumer generation, lowest offset whose ack was refused in it). One
        entry per partition, replaced each generation."""
        self._refetches: set[asyncio.Future[None]] = set()
        """Re-fetches under way (`_spawn`)."""
        self._start: dict[Any, int] = {}
        """First offset of each never-committed stream partition this worker sought to."""
        self._held_since: dict[Any, float] = {}
        """Per partition whose head is unacknowledged: since when (monotonic), or the next try."""
        self._put_down = asyncio.Event()
        """Clear from the first message of a batch the fetch loop hands over until the batch ends
        (`getmany`)."""
        self._put_down.set()
        self._progress: dict[Any, tuple[int, float]] = {}
        """Per stream partition read past its committed offset: (that offset, since when), for
        `_watch_stalls`."""

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        """mode's race of `coros` (the first to finish wins, or the consumer's stop), without its
        four tasks when the first is a coroutine that finishes without suspending: the fetch
        loop's hand-over of a message to a channel with room (see the module's last part). The
        others are then never started (closed, as mode cancels the losers); a hand-over that
        suspends races on from where it stopped.

        From Python 3.12 the first step runs in an eagerly started task of its own, so code in it
        that asks for the current task (`asyncio.timeout`, 3.12's `wait_for`) finds its own. On
        3.11 it runs in place, as the fetch loop's task: nothing on the hand-over's path asks for
        the current task there (3.11's `wait_for` does not)."""
        first = coros[0] if coros else None
        if not asyncio.iscoroutine(first) or self._stopped.is_set() or self._crashed.is_set():
            return await super().wait_first(*coros, timeout=timeout)
        others = coros[1:]
        waiting: Any = None
        try:  # the first step only: a hand-over that fails at once ends the race with its error
            if EAGER_TASKS:
                started = asyncio.Task(first, loop=self.loop, eager_start=True)  # type: ignore[call-arg]
                waiting, result = (None, started.result()) if started.done() else (started, None)
            else:
                try:
                    waiting = _Resumed(first, first.send(None))
                except StopIteration as done:
                    result = done.value
        except BaseException:
            _close(others)
            raise
        if waiting is not None:
            return await super().wait_first(waiting, *others, timeout=timeout)
        _close(others)
        return WaitResults([first], [result], False)

    def ack(self, message: Any) -> bool:
        app = self.app
        with ack_lock:
            stale = message.generation_id != app.consumer_generation_id or not app.flow_control.is_active()
            skipped = stale and not message.tracked
            if skipped and not message.acked and app.topics.acks_enabled_for(message.topic):
                # Not acked, not waited for: a rebalance must not block on it, and its offset is
                # not committed, so the seek that ends the rebalance fetches it again.
                message.acked = True
                self._unacked_messages.discard(message)
                self._refetch(message.tp, message.offset, app.consumer_generation_id)
                return False
            return bool(super().ack(message))

    def _refetch(self, tp: Any, offset: int, generation: int) -> None:
        """Once flow resumes, seek `tp` back to `offset` if it is still this generation and the
        partition was read past `offset` (otherwise the generation's seek or its fetch reaches
        it anyway). One task per partition and generation, for its lowest refused offset: a
        later, higher one is covered by it."""
        held = self._lowest_refused.get(tp)
        if held is not None and held[0] == generation and held[1] <= offset:
            return
        if held is None or held[0] != generation:
            log.info(  # once per partition and generation: a backlog can be thousands
                "refused the ack of %s offset %d (skipped during a rebalance): it is fetched again", tp, offset
            )
        target = (generation, offset)
        self._lowest_refused[tp] = target

        async def seek_back() -> None:
            await self.app.flow_control.acquire()  # the generation's seek to committed is done
            if self.app.consumer_generation_id != generation or self._lowest_refused.get(tp) != target:
                return  # a newer generation's seek, or a lower refused offset's task, covers it
            read = self._read_offset[tp]
            if read is None or offset > read or tp not in self.assignment():
                return  # not fetched past it yet: the fetch reaches it
            log.info("%s was read past refused offset %d: seeking back to it", tp, offset)
            await self._seek_back(tp, offset)

        self._spawn(seek_back())

    async def _seek_back(self, tp: Any, offset: int) -> None:
        """Fetch `tp` again from `offset`, which it was read past: the one re-fetch of both a
        refused message and a missing head. Faust's read offset for it is held off until a commit
        passes what was read before (else it drops the re-fetched messages as already read, or a
        batch fetched before the seek raises it again), its gaps are dropped (they would count
        unprocessed messages as done), and the seek runs on the consumer's own thread."""
        self._gap.pop(tp, None)
        self._read_offset.rewinding[tp] = max(self._read_offset.get(tp) or offset, *self._acked[tp], offset)
        await self._thread.call_thread(self._seek_in_thread, {tp: offset})

    def _spawn(self, work: Any) -> None:
        """Run `work` as a task the consumer cancels when it stops."""
        task = asyncio.ensure_future(work)
        self._refetches.add(task)
        task.add_done_callback(self._refetches.discard)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        """Faust's fetch of a batch, with `_put_down` clear while the fetch loop hands it over."""
        put_down = self._put_down
        try:
            async for tp, message in super().getmany(timeout):
                put_down.clear()
                yield tp, message
        finally:
            put_down.set()

    async def seek_to_committed(self) -> Mapping[Any, int]:
        """Faust's seek to the committed offsets, made with the fetch loop stopped and no batch in
        its hands (4 above), and with every stream partition that has no committed offset (or 0, or
        one older than its first offset) sought to its first offset (1 above). Faust resumes the
        fetch loop after this seek (the end of a rebalance's recovery)."""
        if self.flow_active:
            self.stop_flow()  # the batch in hand stops at its next message; the hand-over in progress is abandoned
            try:
                await asyncio.wait_for(self._put_down.wait(), PUT_DOWN_TIMEOUT)
            except TimeoutError:
                log.warning(
                    "the fetch loop still held a batch %.0f s after it was stopped: seeking anyway", PUT_DOWN_TIMEOUT
                )
        committed = dict(await super().seek_to_committed())
        self._held_since.clear()  # a new generation: every head is looked at afresh
        self._read_offset.rewinding.clear()
        streams = [tp for tp in committed if self.app.topics.acks_enabled_for(tp.topic)]
        if streams:
            first = await self._thread.earliest_offsets(*streams)
            moved = {
                tp: first[tp] for tp in streams if tp in first and (not committed[tp] or committed[tp] < first[tp])
            }
            for tp in streams:
                self._gap.pop(tp, None)  # holes are re-fetched, never taken as processed
            if moved:
                await self._thread.call_thread(self._seek_in_thread, moved)
                self._start.update(moved)
                committed.update(moved)
        return committed

    def _seek_in_thread(self, offsets: Mapping[Any, int]) -> None:
        """Seek on the consumer's own thread (aiokafka's fetcher is not thread-safe)."""
        consumer = self._thread._ensure_consumer()
        for tp, offset in offsets.items():
            try:
                consumer.seek(tp, offset)
            except Exception as exc:  # noqa: BLE001 - revoked meanwhile: its next owner starts at the committed offset
                log.info("no seek of %s to %d: %s", tp, offset, type(exc).__name__)

    @Service.task
    async def _stall_watcher(self) -> None:
        """`_watch_stalls` (and `_stop_if_undelivered`) every commit interval, on its own timer, so
        that nothing on the commit path (a flush, a slow commit) can keep it from looking."""
        interval = float(self.app.conf.broker_commit_interval)
        async for _ in self.itertimer(interval, name="stall-watch"):
            self._watch_stalls(time.monotonic())
            await self._stop_if_undelivered()

    async def _stop_if_undelivered(self) -> bool:
        """Crash the consumer if a batch of the producer failed for good (5 above): at the next
        commit, or on this timer when there is nothing to commit (records a timer sent, such as
        the deadline index's ticks, belong to no offset, and a quiet worker commits nothing)."""
        lost = undelivered(self.app)
        if lost is None:
            return False
        await self.crash(
            ProducerSendError(
                f"a batch of records was not delivered ({type(lost).__name__}): not committing past "
                "the messages that produced it; the worker stops and they are read again"
            )
        )
        return True

    def _watch_stalls(self, now: float) -> None:
        """Fetch again a stream partition read past its committed offset (or the first offset it
        was sought to) whose commit has not moved for `STALL_INTERVALS` commit intervals."""
        if not self.app.flow_control.is_active():
            return
        limit = STALL_INTERVALS * float(self.app.conf.broker_commit_interval)
        for tp in self.assignment():
            if not self.app.topics.acks_enabled_for(tp.topic):
                continue
            start = self._commit_start(tp)
            read = dict.get(self._read_offset, tp)  # what was read, even while rewinding
            if start is None or read is None or read <= start:
                self._progress.pop(tp, None)  # idle, or never read past: nothing to commit
                continue
            seen = self._progress.get(tp)
            if seen is None or seen[0] != start:
                self._progress[tp] = (start, now)
            elif now - seen[1] >= limit:
                self._progress[tp] = (start, now)  # the next try, if any, one limit later
                acked = self._acked.get(tp) or []
                log.warning(
                    "%s has not committed past offset %d for %.0f s although read to %d "
                    "(%d acknowledged, lowest %s; %d gap(s); rewinding to %s; head held since %s): "
                    "fetching it again",
                    tp,
                    start,
                    now - seen[1],
                    read,
                    len(acked),
                    min(acked) if acked else None,
                    len(self._gap.get(tp) or ()),
                    self._read_offset.rewinding.get(tp),
                    self._held_since.get(tp),
                )
                self._spawn(self._unstall(tp, start))

    async def _unstall(self, tp: Any, start: int) -> None:
        """Fetch `tp` again from the lower of `start` and its committed offset on the broker
        (this worker's record can be ahead of it: Faust records a commit that failed), with its
        acknowledgements forgotten so that every message from there is processed and counted
        again."""
        try:
            broker = await self._thread.call_thread(self._committed_in_thread, tp)
        except Exception as exc:  # noqa: BLE001 - the coordinator is away: this worker's record will do
            log.info("no committed offset of %s from the broker: %s", tp, type(exc).__name__)
            broker = None
        offset = start if broker is None else min(start, broker)
        if offset != start:
            log.warning("%s: committed offset %d on the broker, %d here: fetching from %d", tp, broker, start, offset)
        await self._seek_back(tp, offset)
        self._acked[tp].clear()
        self._acked_index[tp].clear()
        self._committed_offset[tp] = offset

    async def _committed_in_thread(self, tp: Any) -> int | None:
        """The group's committed offset of `tp` on the broker (on the consumer's own thread)."""
        committed: int | None = await self._thread._ensure_consumer().committed(tp)
        return committed

    def _commit_start(self, tp: Any) -> int | None:
        """Where `tp`'s next commit starts: its committed offset, or the first offset a
        never-committed partition was sought to."""
        committed: int | None = self._committed_offset.get(tp)
        return committed if committed is not None else self._start.get(tp)

    def _new_offset(self, tp: Any) -> int | None:
        """Faust's next commit offset, but never past an unacknowledged message at the head of a
        partition, and a head left behind is fetched again.

        Faust checks the head only against a committed offset above 0, and lets one missing
        message pass (so with no committed offset it committed past every message before the
        first acknowledged one); and when a batch fetched before the rebalance seek is delivered
        after it, Faust's record of how far it has read jumps ahead and it drops the re-fetched
        messages as already read, so the head is never processed and the partition never commits
        again (seen as a partition stuck short of its end). A head still missing after two commit
        intervals is fetched again from where it starts."""
        acked = self._acked[tp]
        start = self._commit_start(tp)
        if acked and start is not None and min(acked) > start:
            self._head_missing(tp, start)
            return None
        self._held_since.pop(tp, None)
        offset: int | None = super()._new_offset(tp)
        furthest = self._read_offset.rewinding.get(tp)
        if furthest is not None and offset is not None and offset > furthest:
            del self._read_offset.rewinding[tp]  # the re-fetch has caught up: drop re-reads again
        return offset

    def _head_missing(self, tp: Any, start: int) -> None:
        """Seek `tp` back to `start` when its head has been missing for two commit intervals (by
        then any batch fetched before the last seek has long been delivered), and again after
        ten more if it is still missing (the seek was lost, or the head waited behind a large
        buffer). A seek back only: what follows is processed again (at-least-once), never
        skipped."""
        now = time.monotonic()
        since = self._held_since.setdefault(tp, now)
        interval = float(self.app.conf.broker_commit_interval)
        if now - since < 2 * interval or not self.app.flow_control.is_active() or tp not in self.assignment():
            return
        self._held_since[tp] = now + 8 * interval  # the next try, if any, after ten intervals
        log.warning(
            "%s: messages from offset %d were read past without being processed: fetching them again", tp, start
        )
        self._spawn(self._seek_back(tp, start))

    async def _commit_offsets(self, offsets: Mapping[Any, int], start_new_transaction: bool = True) -> bool:
        """Faust's commit, after what agents hold back for later has reached the producer
        (`streams.commits`): Faust then flushes the producer and commits."""
        await flush_before_commit(self.app)
        did_commit: bool = await super()._commit_offsets(offsets, start_new_transaction)
        return did_commit

    async def _commit(self, offsets: Mapping[Any, int]) -> bool:
        """Faust's commit, made after it flushed the producer, unless a batch the producer was
        given failed for good (5 above): then the worker crashes instead, as Faust does when a
        record it attached to an offset fails, and the messages since the last commit are read
        again by whoever takes the partitions."""
        if await self._stop_if_undelivered():
            return False
        committed: bool = await super()._commit(offsets)
        return committed

    async def on_stop(self) -> None:
        for task in list(self._refetches):  # waiting for a resume that a stopping worker never has
            task.cancel()
        await super().on_stop()


class Transport(aiokafka.Transport):
    Consumer = Consumer


class App(faust.App):
    """A Faust app whose consumer is `Consumer` above (the producer is Faust's unchanged)."""

    customer_history: Any = None
    """The worker's copy of every customer's history (`streams.customer_history.HistoryReplica`),
    which `run_worker` loads before the worker starts."""

    async def on_first_start(self) -> None:
        """Follow the customer history from the app's first start, not from the end of table
        recovery (when Faust starts `app.task`s and the agents resume): the copy then catches up
        with what other workers sent during the start while the tables recover."""
        await super().on_first_start()
        if self.customer_history is not None:
            self.add_future(self.customer_history.follow())

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)
