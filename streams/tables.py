"""How every Faust table of the worker is made: keyed by str, plain JSON values, co-partitioned.

(A `value_type` that is not a faust.Record breaks changelog recovery, so values stay plain JSON.)

With the RocksDB store every partition of every table is its own database; Faust's defaults
(3 x 64 MB memtables and a 2 GB block cache each) would let a worker with 12 partitions of 3
tables grow by gigabytes. The settings bound both; `tests/benchmarks/bench_sla.py` measures the
memory per open ticket they give.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import faust
import orjson
from faust.stores.rocksdb import Store as RocksDBStore
from faust.streams import _current_event
from faust.utils.json import on_default

from ticketstream.settings import Settings
from ticketstream.streams.emit import produce


def table(app: faust.App, settings: Settings, name: str, default: Any, help: str) -> Any:  # noqa: A002
    options = {
        "write_buffer_size": settings.rocksdb_write_buffer_mb * 1024 * 1024,
        "max_write_buffer_number": 2,
        "block_cache_size": settings.rocksdb_block_cache_mb * 1024 * 1024,
    }
    return app.Table(
        name,
        default=default,
        partitions=settings.partitions,
        key_type=str,
        help=help,
        options=options if settings.store == "rocksdb" else None,
    )


JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z
"""What Faust's `json` codec passes to orjson (faust.utils.json.dumps, with its `on_default` for
what orjson cannot write itself, such as sets): the same bytes."""


def encode(obj: Any) -> bytes:
    """A table key or value as Faust's `json` serializer writes it to the changelog, without its
    four layers of codec, registry and schema lookups around the one orjson call (tables here are
    keyed by str with plain JSON values: `table`). tests/test_tables.py checks the bytes."""
    return orjson.dumps(obj, default=on_default, option=JSON_OPTIONS)


async def put(table: Any, key: str, value: Any) -> None:
    """`table[key] = value` from an agent, with the changelog record handed to the producer itself.

    Why: Faust's `Table.__setitem__` queues the changelog record on `Topic.send_soon`'s buffer (a
    future, a pending-message tuple and a turn of the buffer's drain task per record) before it
    reaches the producer, and every event of the ticket agent writes its ticket once. The record
    is the same: the bytes of Faust's own codec (`encode`), the partition of the event
    being processed (what Faust's table uses: tables are co-partitioned with their streams), so
    recovery and standbys read it as they read Faust's. At-least-once holds as for every record
    the agents send (`streams/emit.py`): Faust flushes this producer before it commits the source
    offsets. With the RocksDB store the record's offset is kept as Faust keeps it (the store knows
    where its changelog replay starts)."""
    event = faust.current_event()
    if event is None:
        raise RuntimeError("a table is written only while an agent processes an event")
    partition = event.message.partition
    key_bytes, value_bytes = encode(key), encode(value)
    table.data[key] = value  # the store itself: `table[key] = value` would send the record through Faust
    sent = await produce(table.app, table.changelog_topic.get_topic_name(), key_bytes, value_bytes, partition)
    if isinstance(table.data, RocksDBStore):  # the memory store keeps no offset: no callback per write
        sent.add_done_callback(table._on_changelog_sent)  # Faust's own: the store's replay starts after it


def entries(table: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) of the table's active partitions, for a full pass (an index rebuild).
    A RocksDB store's raw bytes (JSON keys and values, as `table` makes them) are decoded here in
    one step: Faust's per-item codec layers cost more than the JSON itself.

    The caller may yield to the event loop between items (`TicketAgent.rebuild_index`), where a
    rebalance can open or drop a partition's database and agents can write: so the partitions
    are the ones active when the pass began (a RocksDB iterator reads its database as it was
    when it started), and the memory store's items are copied first."""
    store = table.data
    if isinstance(store, RocksDBStore):
        for db in list(store._dbs_for_actives()):
            for key, value in store._visible_items(db):
                yield orjson.loads(key), orjson.loads(value)
    else:
        yield from list(table.items())


@contextmanager
def processing(event: Any) -> Iterator[None]:
    """Table writes as while `event` is processed. Faust's table writes (and `put`) take their
    changelog partition, and a windowed table its window, from the event being processed
    (`faust.current_event()`), which for an agent that takes a batch (`take_events`) is the last
    one taken: each of a batch's writes names the event it stands for, as Faust's stream
    iteration does for one event at a time."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
