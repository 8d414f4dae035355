"""`ticketstream topics create|describe`: make the system's topics exist, deliberately configured."""

from __future__ import annotations

from dataclasses import dataclass

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

from ticketstream.settings import Settings
from ticketstream.topology import TopicSpec, changelog_topics, replication, system_topics

TOPIC_ALREADY_EXISTS = 36


def admin_client(settings: Settings) -> KafkaAdminClient:
    if not settings.bootstrap_servers:
        raise RuntimeError("no Kafka bootstrap servers are configured")
    return KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        client_id=f"{settings.app_id}-admin",
        request_timeout_ms=30_000,
        **settings.kafka_client_options(),
        **settings.kafka_connect_options(),
    )


@dataclass(frozen=True)
class TopicResult:
    name: str
    created: bool
    partitions: int
    note: str = ""


def all_topics(settings: Settings) -> list[tuple[str, TopicSpec]]:
    """(full name, spec) of every topic, the prefix applied to system topics."""
    return [(settings.topic(s.name), s) for s in system_topics()] + [(s.name, s) for s in changelog_topics(settings)]


def broker_count(admin: KafkaAdminClient) -> int:
    return len(admin.describe_cluster().get("brokers", [])) or 1


def with_replication(settings: Settings, admin: KafkaAdminClient | None = None) -> Settings:
    """`settings` with the replication factor decided: the configured one, else min(3, brokers)."""
    if settings.replication_factor is not None:
        return settings
    own = admin is None
    admin = admin or admin_client(settings)
    try:
        rf, _ = replication(broker_count(admin))
    finally:
        if own:
            admin.close()
    return settings.model_copy(update={"replication_factor": rf})


def create_topics(settings: Settings, admin: KafkaAdminClient | None = None) -> list[TopicResult]:
    """Create every missing topic; report the existing ones (and any partition-count drift).
    Replication: `ticketstream.topology.replication` (min(3, brokers), min ISR 2 at RF 3)."""
    own = admin is None
    admin = admin or admin_client(settings)
    try:
        wanted = all_topics(settings)
        rf, min_isr = replication(broker_count(admin), settings.replication_factor)
        isr = {"min.insync.replicas": str(min_isr)} if min_isr else {}
        response = admin.create_topics(
            [NewTopic(name, settings.partitions, rf, topic_configs={**spec.config(), **isr}) for name, spec in wanted],
            raise_errors=False,
        )
        errors = {t["name"]: (t["error_code"], t.get("error_message")) for t in response["topics"]}
        failed = {n: e for n, e in errors.items() if e[0] not in (0, TOPIC_ALREADY_EXISTS)}
        if failed:
            detail = "; ".join(f"{n}: error {c} {m or ''}".strip() for n, (c, m) in failed.items())
            raise RuntimeError(f"could not create topics: {detail}")
        existing = {d["name"]: len(d["partitions"]) for d in admin.describe_topics([n for n, _ in wanted])}
        results = []
        for name, _spec in wanted:
            created = errors.get(name, (0, None))[0] == 0
            parts = existing.get(name, settings.partitions)
            note = "" if parts == settings.partitions else f"has {parts} partitions, settings say {settings.partitions}"
            results.append(TopicResult(name, created, parts, note))
        return results
    finally:
        if own:
            admin.close()


def describe_topics(settings: Settings) -> list[dict[str, object]]:
    """Partitions, replication and non-default configuration of every system topic."""
    admin = admin_client(settings)
    try:
        wanted = all_topics(settings)
        present = set(admin.list_topics())
        rows: list[dict[str, object]] = []
        names = [n for n, _ in wanted if n in present]
        described = {d["name"]: d for d in admin.describe_topics(names)} if names else {}
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names]) if names else {}
        topic_cfgs = configs.get("topic", {}) if isinstance(configs, dict) else {}
        for name, spec in wanted:
            d = described.get(name)
            if d is None:
                rows.append({"topic": name, "exists": False, "key": spec.key, "purpose": spec.purpose})
                continue
            cfg = {k: v["value"] for k, v in topic_cfgs.get(name, {}).items()}
            rows.append(
                {
                    "topic": name,
                    "exists": True,
                    "partitions": len(d["partitions"]),
                    "replication_factor": len(d["partitions"][0]["replica_nodes"]) if d["partitions"] else 0,
                    "config": cfg,
                    "key": spec.key,
                    "purpose": spec.purpose,
                }
            )
        return rows
    finally:
        admin.close()
