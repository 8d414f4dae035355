"""The worker's consumer refuses the ack of a message no agent saw, and only of such a message
(workers/consumer.py). Pure bookkeeping: no broker."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from faust.types.tuples import ConsumerMessage

from ticketstream.settings import load_settings
from ticketstream.topology import INBOUND
from ticketstream.workers.app import create_app


async def _app(tmp_path: Path) -> tuple[Any, str]:
    """The worker's app with its agents' topics subscribed, as starting it does (no broker)."""
    settings = load_settings(environ={}, bootstrap_servers="127.0.0.1:9", data_dir=tmp_path)
    app = create_app(settings)
    app.finalize()
    for agent in app.agents.values():
        app.topics.add(agent.channel)
    await app.topics._update_indices()  # the conductor's subscription: these topics are acked
    return app, settings.topic(INBOUND)


def _message(app: Any, topic: str, offset: int, *, tracked: bool) -> ConsumerMessage:
    message = ConsumerMessage(topic, 0, offset, 0.0, 0, None, b"T-1", b"{}", None)
    message.generation_id = app.consumer_generation_id
    message.tracked = tracked
    return message


def _partitions(app: Any, topic: str, count: int) -> list[Any]:
    return [_message(app, topic, 0, tracked=False).tp._replace(partition=p) for p in range(count)]


def test_every_topic_is_read_by_one_agent(tmp_path: Path):
    """The consumer's test for 'no agent saw it' (`message.tracked`) holds only when one stream
    reads each topic: a message one agent processed and another skipped would look processed."""
    app, _ = asyncio.run(_app(tmp_path))
    readers = Counter(topic for agent in app.agents.values() for topic in agent.channel.topics)
    assert readers and max(readers.values()) == 1, readers


def test_a_message_skipped_during_a_rebalance_is_not_acknowledged(tmp_path: Path):
    async def run() -> None:
        app, topic = await _app(tmp_path)
        assert app.topics.acks_enabled_for(topic)
        consumer = app.consumer
        app.flow_control.suspend()  # a rebalance or a stop is under way
        skipped = _message(app, topic, 7, tracked=False)
        assert consumer.ack(skipped) is False
        assert not consumer._acked.get(skipped.tp)  # nothing to commit for it

    asyncio.run(run())


def test_a_message_an_agent_processed_is_acknowledged_even_after_the_stop_began(tmp_path: Path):
    """Faust suspends flow control and then waits for the agents' messages in flight; their acks
    must count, or the offsets stay uncommitted and intake forwards those events a second time
    after every graceful stop (the copies a clean-clone CI run found)."""

    async def run() -> None:
        app, topic = await _app(tmp_path)
        assert app.topics.acks_enabled_for(topic)
        consumer = app.consumer
        app.flow_control.suspend()
        processed = _message(app, topic, 8, tracked=True)
        assert consumer.ack(processed) is True
        assert list(consumer._acked[processed.tp]) == [8]
        stale = _message(app, topic, 9, tracked=True)
        stale.generation_id = app.consumer_generation_id - 1  # fetched before the rebalance, processed
        assert consumer.ack(stale) is True

    asyncio.run(run())


async def _refused_then_resumed(tmp_path: Path, read_offset: int | None, *, new_generation: bool = False) -> list[int]:
    """Refuse the ack of offset 7 during a rebalance, let the partition be read to `read_offset`,
    resume flow; return the offsets the consumer sought its partition to."""
    app, topic = await _app(tmp_path)
    consumer = app.consumer
    thread = _Thread({}, first=0)
    consumer._thread = thread
    consumer.assignment = lambda: {skipped.tp}
    app.flow_control.suspend()
    skipped = _message(app, topic, 7, tracked=False)
    assert consumer.ack(skipped) is False
    assert consumer.ack(_message(app, topic, 9, tracked=False)) is False  # covered by 7's
    consumer._read_offset[skipped.tp] = read_offset
    if new_generation:
        app.consumer_generation_id += 1
    app.flow_control.resume()
    await asyncio.wait_for(asyncio.gather(*consumer._refetches), 5)
    return [offset for _, offset in thread.seeks]


def test_a_refused_message_read_past_is_sought_back_to_once(tmp_path: Path):
    assert asyncio.run(_refused_then_resumed(tmp_path, 12)) == [7]


def test_the_consumer_never_seeks_forward_to_a_refused_message(tmp_path: Path):
    """Not read up to it yet (the generation's seek put the partition at 3): the fetch reaches it.
    A seek to 7 would skip 3..6, never fetched, and Faust could commit past them."""
    assert asyncio.run(_refused_then_resumed(tmp_path, 3)) == []
    assert asyncio.run(_refused_then_resumed(tmp_path, None)) == []


def test_a_new_generation_leaves_the_refetch_to_its_own_seek(tmp_path: Path):
    assert asyncio.run(_refused_then_resumed(tmp_path, 12, new_generation=True)) == []


class _Thread:
    """The consumer thread's calls that the consumer makes, recorded (no broker)."""

    def __init__(self, committed: dict[Any, int | None], first: int) -> None:
        self.committed, self.first, self.sought = committed, first, {}
        self.seeks: list[tuple[Any, int]] = []

    async def seek_to_committed(self) -> dict[Any, int | None]:
        return dict(self.committed)

    async def earliest_offsets(self, *tps: Any) -> dict[Any, int]:
        return dict.fromkeys(tps, self.first)

    async def call_thread(self, fun: Any, *args: Any) -> Any:
        return fun(*args)

    def _ensure_consumer(self) -> _Thread:
        return self

    def seek(self, tp: Any, offset: int) -> None:
        self.sought[tp] = offset
        self.seeks.append((tp, offset))


def test_a_partition_without_a_usable_committed_offset_is_sought_to_its_first_offset(tmp_path: Path):
    """aiokafka leaves a partition without a committed offset (or at 0) where its fetch got to,
    and Faust then drops what its streams had buffered: the chaos backlog test lost thousands.
    A committed offset older than the first one (retention) would leave the head missing."""

    async def run() -> None:
        app, topic = await _app(tmp_path)
        consumer = app.consumer
        fresh, zero, old, done = _partitions(app, topic, 4)
        thread = _Thread({fresh: None, zero: 0, old: 1, done: 42}, first=3)
        consumer._thread = thread
        consumer._gap[done].addi(50, 60)
        assert await consumer.seek_to_committed() == {fresh: 3, zero: 3, old: 3, done: 42}
        assert thread.sought == {fresh: 3, zero: 3, old: 3}  # the committed one is aiokafka's to seek
        assert not consumer._gap.get(done)  # a hole is fetched again, never taken as processed

    asyncio.run(run())


def test_no_commit_passes_an_unacknowledged_head(tmp_path: Path):
    async def run() -> None:
        app, topic = await _app(tmp_path)
        consumer = app.consumer
        tp, other = _partitions(app, topic, 2)
        consumer._start[tp] = 0
        consumer._acked[tp].extend([3583, 3584, 3585])  # what the stream got to; 0.. never processed
        assert consumer._new_offset(tp) is None
        consumer._acked[tp].extend([0, 1, 2])
        assert consumer._new_offset(tp) == 3  # up to the first message not acknowledged yet
        consumer._committed_offset[other] = 100  # Faust itself lets one missing message pass
        consumer._acked[other].extend([101, 102])
        assert consumer._new_offset(other) is None

    asyncio.run(run())


def test_a_head_read_past_without_being_processed_is_fetched_again(tmp_path: Path):
    """A batch fetched before the rebalance seek but delivered after it moves Faust's read offset
    ahead, and Faust then drops the re-fetched head as already read: the partition would never
    commit again. After two commit intervals with the head missing it is fetched again."""

    async def run() -> None:
        app, topic = await _app(tmp_path)
        consumer = app.consumer
        tp = _message(app, topic, 0, tracked=False).tp
        thread = _Thread({}, first=0)
        consumer._thread = thread
        consumer.assignment = lambda: {tp}
        app.flow_control.resume()
        consumer._committed_offset[tp] = 100
        consumer._read_offset[tp] = 900
        consumer._acked[tp].extend(range(800, 810))  # 100..799 dropped as already read
        consumer._gap[tp].addi(101, 800)  # and Faust took them for a hole in the log
        assert consumer._new_offset(tp) is None  # a late batch may still come
        await asyncio.sleep(0)
        assert thread.sought == {}
        consumer._held_since[tp] -= 2 * app.conf.broker_commit_interval  # two commit intervals later
        assert consumer._new_offset(tp) is None
        await asyncio.wait_for(asyncio.gather(*consumer._refetches), 5)
        assert thread.sought == {tp: 100} and not consumer._gap.get(tp)
        # Until the re-fetch catches up with what was read before, nothing counts as read: a late
        # batch from before the seek cannot make the fetch loop drop the re-fetched head again.
        assert consumer._read_offset[tp] is None
        consumer._read_offset[tp] = 905  # the late batch
        assert consumer._read_offset[tp] is None
        thread.sought.clear()
        assert consumer._new_offset(tp) is None
        await asyncio.sleep(0)
        assert thread.sought == {}  # not again at once: it is on its way behind the buffered messages
        consumer._acked[tp].extend(range(100, 800))
        assert consumer._new_offset(tp) == 810
        consumer._committed_offset[tp] = 810  # what committing it does
        assert consumer._read_offset[tp] is None  # 810 is not past the 905 read before
        consumer._acked[tp].extend(range(810, 950))
        assert consumer._new_offset(tp) == 950
        assert consumer._read_offset[tp] == 905  # caught up: re-reads are dropped again

    asyncio.run(run())


class _Broker:
    """The consumer thread and its aiokafka consumer in one, with the group's committed offsets."""

    def __init__(self, group_committed: dict[Any, int | None]) -> None:
        self.group_committed = group_committed
        self.seeks: list[tuple[Any, int]] = []

    def _ensure_consumer(self) -> _Broker:
        return self

    def seek(self, tp: Any, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def call_thread(self, fun: Any, *args: Any) -> Any:
        result = fun(*args)
        return await result if asyncio.iscoroutine(result) else result

    async def committed(self, tp: Any) -> int | None:  # aiokafka's AIOKafkaConsumer.committed
        return self.group_committed.get(tp)


def test_a_partition_that_stops_committing_is_fetched_again(tmp_path: Path):
    """The chaos test once saw a partition processed to its end while its committed offset stayed
    where a rebalance had left it, and nothing else noticed. Ten commit intervals without a
    commit while read past it: fetched again from the lower of the two committed offsets, with
    what it had acknowledged forgotten, so it commits again as the re-fetch is processed."""

    async def run() -> None:
        app, topic = await _app(tmp_path)
        consumer = app.consumer
        stuck, busy, idle = _partitions(app, topic, 3)
        broker = _Broker({stuck: 240})  # this worker's record is ahead: Faust records failed commits too
        consumer._thread = broker
        consumer.assignment = lambda: {stuck, busy, idle}
        app.flow_control.resume()
        limit = 10 * app.conf.broker_commit_interval
        for tp, committed, read in ((stuck, 248, 1165), (busy, 10, 50), (idle, 30, 29)):
            consumer._committed_offset[tp] = committed
            consumer._read_offset[tp] = read
        consumer._acked[stuck].extend([1200, 1201])
        consumer._watch_stalls(1000.0)
        consumer._committed_offset[busy] = 40  # it commits: no stall
        consumer._watch_stalls(1000.0 + limit - 1)
        assert not consumer._refetches and broker.seeks == []
        consumer._watch_stalls(1000.0 + limit + 1)
        await asyncio.wait_for(asyncio.gather(*consumer._refetches), 5)
        assert broker.seeks == [(stuck, 240)]
        assert consumer._committed_offset[stuck] == 240 and not consumer._acked[stuck]
        assert consumer._read_offset[stuck] is None  # the re-fetched messages are not dropped as read
        consumer._watch_stalls(1000.0 + limit + 2)
        assert not consumer._refetches  # not again before another ten intervals

    asyncio.run(run())


class _Fetches(_Thread):
    """`_Thread` for the fetch loop too: batches handed out in turn (no broker)."""

    def __init__(self, committed: dict[Any, int | None], batches: list[dict[Any, list[int]]]) -> None:
        super().__init__(committed, first=0)
        self.batches = batches

    async def seek_to_committed(self) -> dict[Any, int | None]:
        await asyncio.sleep(0)  # a request to the group coordinator
        return await super().seek_to_committed()

    def highwater(self, tp: Any) -> int:
        return 1000

    async def wait_next_records(self, timeout: float) -> Any:
        batch = self.batches.pop(0)
        records = {
            tp: [
                SimpleNamespace(
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=offset,
                    timestamp=0,
                    timestamp_type=0,
                    headers=[],
                    key=b"T-1",
                    value=b"{}",
                    checksum=None,
                    serialized_key_size=3,
                    serialized_value_size=2,
                )
                for offset in offsets
            ]
            for tp, offsets in batch.items()
        }
        return records, set(batch)


def test_no_batch_fetched_before_the_seek_to_committed_is_handed_over_after_it(tmp_path: Path):
    """The restart test's stall (about one run in fifteen): recovery's seek to the committed
    offsets (47) came while the fetch loop was handing over a batch fetched before it (91..107).
    The rest of that batch moved Faust's read offset past the seek's re-fetch, which was then
    dropped as already read, and the jump from 47 to the next stale message was taken for a hole
    in the log, counted as processed at the next commit although no agent had seen 91..103."""

    async def run() -> None:
        app, topic = await _app(tmp_path)
        consumer = app.consumer
        (tp,) = _partitions(app, topic, 1)
        fetches = _Fetches({tp: 47}, [{tp: [91, 92, 93, 94]}, {tp: [47, 48]}])
        consumer._thread = fetches
        consumer._wait_next_records = fetches.wait_next_records
        consumer.assignment = lambda: {tp}
        consumer._set_active_tps({tp})
        app.flow_control.resume()
        consumer.resume_flow()
        batch = consumer.getmany(1.0)  # the fetch loop's turn: one batch, a message at a time
        _, message = await batch.__anext__()
        assert message.offset == 91  # in hand (its agent's channel is full) when recovery seeks
        seek = asyncio.ensure_future(consumer.perform_seek())
        for _ in range(10):
            await asyncio.sleep(0)
        assert not seek.done()  # it waits for the fetch loop to put the batch down
        consumer._read_offset[tp] = 91  # the fetch loop records the abandoned hand-over as read ...
        handed = [message.offset async for _, message in batch]  # ... and at its next turn stops
        await asyncio.wait_for(seek, 5)
        assert handed == []  # nothing fetched before the seek is handed over after it
        assert consumer._read_offset[tp] == 47  # and the seek's re-fetch is not dropped as read
        assert not consumer.flow_active  # until recovery resumes the fetch loop after its seek

    asyncio.run(run())


def test_a_hand_over_that_does_not_wait_wins_the_race_without_tasks(tmp_path: Path):
    """The fetch loop's race of each hand-over against the suspension of flow: a hand-over that
    finishes at once wins without mode's tasks (the others are closed, never started), and its
    exception, if it raises at once, propagates. A race whose first contender is not a
    coroutine, or one on a stopped consumer, is mode's."""

    async def run() -> None:
        app, _ = await _app(tmp_path)
        consumer, suspend = app.consumer, asyncio.Event()

        async def handed(value: str) -> str:
            return value

        made: list[Any] = []
        loop = asyncio.get_running_loop()

        def counting(loop: Any, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
            made.append(coro)
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(counting)
        losing = suspend.wait()
        results = await consumer.wait_first(handed("delivered"), losing)
        assert results.results == ["delivered"] and results.stopped is False
        assert made == [] and losing.cr_frame is None  # closed, not left for the collector
        results = await consumer.wait_first(suspend, handed("not a coroutine first: mode's race"))
        assert len(made) == 4 and results.results == ["not a coroutine first: mode's race"]
        loop.set_task_factory(None)

        async def refused() -> None:
            raise ValueError("undecodable")

        losing = suspend.wait()
        try:
            await consumer.wait_first(refused(), losing)
        except ValueError:
            pass
        else:
            raise AssertionError("the hand-over's error was swallowed")
        assert losing.cr_frame is None

        consumer._stopped.set()
        results = await consumer.wait_first(handed("too late"), suspend.wait())
        assert results.stopped is True  # mode's answer for a stopped service

    asyncio.run(run())


def test_a_hand_over_that_waits_races_on_from_where_it_stopped(tmp_path: Path):
    """A hand-over that suspends (a full channel) goes on from its first suspension: it completes
    with what it waits for, or, when flow is suspended first, it is cancelled where it waits."""

    async def run() -> None:
        app, _ = await _app(tmp_path)
        consumer, suspend = app.consumer, asyncio.Event()
        room: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        steps: list[str] = []

        async def handed() -> int:
            steps.append("started")
            try:
                slot = await room  # the channel is full
                steps.append(f"put in slot {slot}")
                return slot
            except asyncio.CancelledError:
                steps.append("abandoned")
                raise

        race = asyncio.ensure_future(consumer.wait_first(handed(), suspend.wait()))
        await asyncio.sleep(0)
        assert steps == ["started"] and not race.done()
        room.set_result(3)
        results = await asyncio.wait_for(race, 5)
        assert results.results == [3] and steps == ["started", "put in slot 3"]

        steps.clear()
        room = asyncio.get_running_loop().create_future()
        race = asyncio.ensure_future(consumer.wait_first(handed(), suspend.wait()))
        await asyncio.sleep(0)
        suspend.set()  # a rebalance starts while the channel is still full
        results = await asyncio.wait_for(race, 5)
        for _ in range(3):
            await asyncio.sleep(0)  # mode cancels the loser on its way out
        assert results.results == [True] and steps == ["started", "abandoned"]
        assert room.cancelled()  # as a task's cancellation does to what it awaits

        suspend.clear()
        room = asyncio.get_running_loop().create_future()
        race = asyncio.ensure_future(consumer.wait_first(handed(), suspend.wait()))
        await asyncio.sleep(0)
        room.set_exception(ValueError("the channel's decoder failed"))
        try:
            await asyncio.wait_for(race, 5)
        except ValueError:
            pass
        else:
            raise AssertionError("an error after the hand-over suspended was swallowed")

    asyncio.run(run())


def test_a_hand_over_that_times_out_a_wait_of_its_own_leaves_the_fetch_loop_running(tmp_path: Path):
    """Faust's hand-over may wait a moment for the producer's buffer to drain
    (`ProducerBuffer.flush_atmost`: `wait_for(..., 0.1)`). The timeout must cancel that wait
    only, never the task that runs the race (the fetch loop): from Python 3.12 `wait_for` cancels
    the *current* task, which is why the hand-over's first step has a task of its own there."""

    async def run() -> None:
        app, _ = await _app(tmp_path)
        consumer, suspend, drained = app.consumer, asyncio.Event(), asyncio.Event()

        async def handed() -> str:
            try:
                await asyncio.wait_for(drained.wait(), 0.05)
            except TimeoutError:
                return "handed over after a bounded wait"
            return "drained"

        results = await asyncio.wait_for(consumer.wait_first(handed(), suspend.wait()), 5)
        await asyncio.sleep(0.1)  # a stray cancellation of this task would land here
        assert results.results == ["handed over after a bounded wait"]

    asyncio.run(run())


def test_a_lost_batch_stops_the_consumer_with_nothing_to_commit_too(tmp_path: Path, monkeypatch: Any):
    """Records a timer sent (the deadline index's ticks) belong to no offset: on a quiet worker
    no commit would notice their batch's failure, so the stall watch's timer does."""
    from aiokafka.errors import MessageSizeTooLargeError

    from ticketstream.workers import consumer as consumer_module

    async def run() -> None:
        app, _ = await _app(tmp_path)
        consumer = app.consumer
        crashes: list[BaseException] = []

        async def crash(reason: BaseException) -> None:
            crashes.append(reason)

        consumer.crash = crash
        assert await consumer._stop_if_undelivered() is False and crashes == []
        monkeypatch.setattr(consumer_module, "undelivered", lambda app: MessageSizeTooLargeError())
        assert await consumer._stop_if_undelivered() is True
        assert await consumer._commit({}) is False  # and no commit either
        assert len(crashes) == 2 and "MessageSizeTooLargeError" in str(crashes[0])

    asyncio.run(run())
