"""Test fixtures: one real Kafka broker per test session, started by the project's own launcher."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from ticketstream.workers import embedded_kafka

# monitoring/ is not a Python package; expose its dashboard generator to the tests by name.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "monitoring" / "grafana"))
sys.modules.setdefault("monitoring_dashboards", __import__("dashboards"))

settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded_kafka.Cluster]:
    """A single-node Apache Kafka (KRaft) for the whole session; tests isolate by topic prefix."""
    directory: Path = tmp_path_factory.mktemp("kafka")
    cluster = embedded_kafka.start(directory, nodes=1)
    try:
        yield cluster
    finally:
        embedded_kafka.stop(directory)


@pytest.fixture(scope="session")
def bootstrap(kafka_cluster: embedded_kafka.Cluster) -> str:
    return kafka_cluster.bootstrap_servers


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[str]:
    """A real PostgreSQL server for the session (Debian's package, a throwaway cluster on loopback)."""
    from tests.postgres import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def archive_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty archive database of each kind: a SQLite file, or a new database on the server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'archive.db'}"
    from tests.postgres import fresh_database

    return fresh_database(request.getfixturevalue("postgres_admin"))
