"""`ticketstream lag` against the real broker: committed offset, end offset and lag per partition."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from tests.harness import REPO, isolated_settings
from ticketstream.workers.lag import lag_rows
from ticketstream.workers.topics import create_topics


def test_lag_rows_count_from_zero_without_a_commit():
    rows = lag_rows({("t", 1): 5, ("t", 0): None, ("gone", 0): 3}, {("t", 0): 7, ("t", 1): 9}, "g")
    assert [(r.partition, r.committed, r.end, r.lag) for r in rows] == [(0, None, 7, 7), (1, 5, 9, 4)]


@pytest.mark.integration
def test_lag_per_partition_and_the_threshold(bootstrap, tmp_path: Path):
    settings = isolated_settings(bootstrap, tmp_path, partitions=2)
    create_topics(settings)
    topic = settings.topic("tickets.inbound")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for _i in range(10):
        producer.send(topic, value=b"x", partition=0)
    for _i in range(4):
        producer.send(topic, value=b"x", partition=1)
    producer.flush()
    producer.close()
    group = f"{settings.app_id}-lagcheck"
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    consumer.commit(
        {TopicPartition(topic, 0): OffsetAndMetadata(3, "", -1), TopicPartition(topic, 1): OffsetAndMetadata(4, "", -1)}
    )
    consumer.close()

    def lag(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "ticketstream.workers.cli",
                "lag",
                "--bootstrap-servers",
                bootstrap,
                "--group",
                group,
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )

    shown = lag()
    assert shown.returncode == 0, shown.stderr
    assert f"group {group}: total lag 7" in shown.stdout
    assert f"{topic}[0]  committed          3  end         10  lag        7" in shown.stdout
    assert f"{topic}[1]  committed          4  end          4  lag        0" in shown.stdout
    assert lag("--max", "7").returncode == 0
    over = lag("--max", "6")
    assert over.returncode == 1 and "1 partition(s) lag more than 6 (largest 7)" in over.stderr
