"""`ticketstream lag`: how far each consumer group is behind, per partition.

The Kafka fetched from Maven Central is the broker's jars only, without `kafka-consumer-groups.sh`,
so operators get the same answer here: committed offset, end offset and lag for every partition a
group has committed on (kafka-python's admin client and a group-less consumer for end offsets).
`--max N` turns it into a check for scripts and probes: exit 1 when any partition lags more.
"""

from __future__ import annotations

from dataclasses import dataclass

from ticketstream.settings import Settings


@dataclass(frozen=True)
class LagRow:
    group: str
    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - (self.committed or 0))


def lag_rows(
    committed: dict[tuple[str, int], int | None], ends: dict[tuple[str, int], int], group: str
) -> list[LagRow]:
    """Rows sorted by topic and partition; a partition without an end offset (deleted topic) is left out."""
    return [LagRow(group, t, p, committed[(t, p)], ends[(t, p)]) for t, p in sorted(committed) if (t, p) in ends]


def _group_id(group: object) -> str:
    return str(group["group_id"] if isinstance(group, dict) else group[0])  # type: ignore[index]


def consumer_lag(settings: Settings, groups: list[str] | None = None) -> list[LagRow]:
    """Lag of `groups` (default: every consumer group of the cluster)."""
    from kafka import KafkaConsumer, TopicPartition

    from ticketstream.workers.topics import admin_client

    admin = admin_client(settings)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers.split(","),  # type: ignore[union-attr]
        enable_auto_commit=False,
        **settings.kafka_client_options(),
        **settings.kafka_connect_options(),
    )
    try:
        names = groups or sorted({_group_id(g) for g in admin.list_groups()})
        rows: list[LagRow] = []
        for group in names:
            offsets = admin.list_group_offsets({group: None}).get(group, {})
            committed = {
                (tp.topic, tp.partition): (om.offset if om.offset >= 0 else None) for tp, om in offsets.items()
            }
            if not committed:
                continue
            ends = consumer.end_offsets([TopicPartition(t, p) for t, p in committed])
            rows.extend(lag_rows(committed, {(tp.topic, tp.partition): e for tp, e in ends.items()}, group))
        return rows
    finally:
        consumer.close()
        admin.close()
