"""A real PostgreSQL server for the archive tests: Debian's `postgresql` package, a throwaway
cluster made by `initdb` in a temporary directory and run by `pg_ctl` on a loopback port.

PostgreSQL refuses to run as root, and CI runs as root, so there the cluster belongs to the
`postgres` user the package creates, and its commands run through `runuser`. The cluster runs
with fsync off: the tests kill the archiver, never the database, and a test cluster that
survives power loss is not worth the wait.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ticketstream.workers.embedded_kafka import free_ports


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    path = found[-1] if found else shutil.which(name)
    if not path:
        raise AssertionError(f"PostgreSQL's {name} is missing: `make test` installs Debian's postgresql package")
    return path


def _as_owner(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@contextmanager
def postgres_server(fsync: bool = False) -> Iterator[str]:
    """A running server; yields its admin URL (postgresql+psycopg://postgres@127.0.0.1:PORT/postgres)."""
    directory = Path(tempfile.mkdtemp(prefix="ticketstream-pg-"))
    data = directory / "data"
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    port = free_ports(1)[0]
    run = lambda args: subprocess.run(_as_owner(args), capture_output=True, text=True, timeout=120)  # noqa: E731
    result = run([_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"])
    assert result.returncode == 0, result.stdout + result.stderr
    options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync={'on' if fsync else 'off'}"
    result = run([_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(directory / "server.log"), "-w", "start"])
    assert result.returncode == 0, result.stdout + result.stderr + _tail(directory / "server.log")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        run([_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(directory, ignore_errors=True)


def _tail(path: Path) -> str:
    try:
        return path.read_text()[-2000:]
    except OSError:
        return ""


def fresh_database(admin_url: str) -> str:
    """A new empty database on the server; returns its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name
