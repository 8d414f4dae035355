"""How every Faust table of the worker is made: keyed by str, plain JSON values, co-partitioned.

(A `value_type` that is not a faust.Record breaks changelog recovery, so values stay plain JSON.)

With the RocksDB store every partition of every table is its own database; Faust's defaults
(3 x 64 MB memtables and a 2 GB block cache each) would let a worker with 12 partitions of 3
tables grow by gigabytes. The settings bound both; `tests/benchmarks/bench_sla.py` measures the
memory per open ticket they give.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import faust
import orjson
from faust.stores.rocksdb import Store as RocksDBStore

from ticketstream.settings import Settings


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


def entries(table: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) of the table's active partitions, for a full pass (an index rebuild).
    A RocksDB store's raw bytes (JSON keys and values, as `table` makes them) are decoded here in
    one step: Faust's per-item codec layers cost more than the JSON itself."""
    store = table.data
    if isinstance(store, RocksDBStore):
        for key, value in store._iteritems():
            yield orjson.loads(key), orjson.loads(value)
    else:
        yield from table.items()
