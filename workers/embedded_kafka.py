"""The embedded real Apache Kafka broker (KRaft) for the demo, the tests and local development.

It fetches the pinned Kafka release from Maven Central once (``deploy/kafka/pom.xml`` with
``mvn dependency:copy-dependencies``) into a cache, formats KRaft storage, starts one or three
combined broker+controller nodes on loopback with free ports, waits until every node serves
metadata, and records the cluster in ``<dir>/cluster.json`` so that ``status`` and ``stop`` work
from any later process. Logs stay in ``<dir>/node-N/server.log``.

A recorded cluster is never deleted by ``start``: its dead nodes are started again with the same
id, ports and data (a developer's topics and messages survive a ``kill -9`` or a reboot); wiping
is the explicit ``start(fresh=True)`` / ``kafka start --fresh``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ticketstream.workers.tls import TlsFiles

KAFKA_VERSION = "4.1.0"
REPO_ROOT = Path(__file__).resolve().parents[1]
POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0


class KafkaLauncherError(RuntimeError):
    """The embedded broker cannot be fetched, started or reached; the message says why."""


def cache_dir() -> Path:
    """Where downloads are kept between runs: $TICKETSTREAM_CACHE, else the XDG cache."""
    if os.environ.get("TICKETSTREAM_CACHE"):
        return Path(os.environ["TICKETSTREAM_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ticketstream"


def _java_major(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise KafkaLauncherError(f"could not read the Java version from `{java} -version`")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def find_java() -> str:
    """Path of a Java 17+ runtime, or a clear error naming what is missing."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if not java:
        raise KafkaLauncherError(
            "Java 17 or newer is required to run the embedded Kafka broker, and no `java` is on PATH. "
            "Install it with: apt-get install -y openjdk-17-jre-headless"
        )
    major = _java_major(java)
    if major < 17:
        raise KafkaLauncherError(f"Kafka {KAFKA_VERSION} needs Java 17 or newer; {java} is Java {major}.")
    return java


def kafka_libs(version: str = KAFKA_VERSION, progress: Callable[[str], None] | None = None) -> Path:
    """The directory of the Kafka jars, downloaded from Maven Central on first use."""
    libs = cache_dir() / f"kafka-{version}" / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    mvn = shutil.which("mvn")
    if not mvn:
        raise KafkaLauncherError(
            f"Kafka {version} is not in the cache ({libs}) and Maven is needed to fetch it from Maven "
            "Central, but no `mvn` is on PATH. Install it with: apt-get install -y maven"
        )
    if not POM.exists():
        raise KafkaLauncherError(f"the Kafka pom {POM} is missing: run from a ticketstream checkout")
    if progress:
        progress(f"fetching Apache Kafka {version} and its dependencies from Maven Central into {libs} ...")
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(POM),
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={tmp}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not any(tmp.glob(f"kafka_2.13-{version}.jar")):
        raise KafkaLauncherError(
            f"Maven could not fetch Kafka {version} (exit {result.returncode}):\n"
            + (result.stdout + result.stderr)[-3000:]
        )
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    marker.write_text(version)
    return libs


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on loopback (bound all at once so none repeats)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Node:
    node_id: int
    port: int
    controller_port: int
    pid: int = 0
    dir: str = ""
    internal_port: int = 0
    """A SASL_SSL cluster's PLAINTEXT loopback listener between its own nodes (0: none)."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Cluster:
    """What `cluster.json` records about a running embedded cluster."""

    dir: str
    version: str
    cluster_id: str
    nodes: list[Node] = field(default_factory=list)
    security_protocol: str = "PLAINTEXT"
    """What clients speak to `bootstrap_servers`: PLAINTEXT, or SASL_SSL (`kafka start --sasl-ssl`)."""
    sasl_username: str = ""
    ssl_cafile: str = ""

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(n.address for n in self.nodes)

    def save(self) -> None:
        Path(self.dir, "cluster.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, directory: Path) -> Cluster | None:
        path = directory / "cluster.json"
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        raw["nodes"] = [Node(**n) for n in raw["nodes"]]
        return cls(**raw)


def pid_alive(pid: int) -> bool:
    """Whether a process runs (a zombie does not: a child of this very process is reaped)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); look at its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return True
    if state != "Z":
        return True
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: its parent reaps it
    return False


_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


FAILOVER_PROPERTIES = [
    # A node that dies is fenced by the controller once its heartbeats stop for this long, and only
    # then do its partitions (and the consumer groups it coordinates) move to the survivors: the
    # bulk of the pause a broker failure causes (Kafka's default 9 s alone made the group stall
    # 15 s in tests/test_chaos.py). Multi-node clusters only: a single node has nowhere to fail
    # over to, and a short session there only risks fencing itself on a starved machine.
    "broker.session.timeout.ms=4000",
    "broker.heartbeat.interval.ms=1000",
]


@dataclass(frozen=True)
class SaslSsl:
    """A cluster whose client listener speaks SASL_SSL with SCRAM-SHA-512 (`kafka start --sasl-ssl`).

    The SCRAM user is written into the metadata when the storage is formatted (`--add-scram`), so
    it exists before the first client connects; the password is not recorded anywhere else. TLS
    comes from PEM files (`workers.tls`), so no keytool is needed."""

    username: str
    password: str
    tls_dir: Path


def _listeners(node: Node, tls: TlsFiles | None) -> list[str]:
    """The listener lines. With TLS, clients get SASL_SSL on `port`, while the nodes talk to each
    other (and the controllers) in PLAINTEXT on loopback-only ports nobody else is told about:
    a development cluster on one machine, not a hardened one."""
    if tls is None:
        return [
            f"listeners=PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{node.port}",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        ]
    return [
        f"listeners=SASL_SSL://127.0.0.1:{node.port},INTERNAL://127.0.0.1:{node.internal_port},"
        f"CONTROLLER://127.0.0.1:{node.controller_port}",
        f"advertised.listeners=SASL_SSL://127.0.0.1:{node.port},INTERNAL://127.0.0.1:{node.internal_port}",
        "inter.broker.listener.name=INTERNAL",
        "listener.security.protocol.map=SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms=SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
        "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={tls.server}",
        "ssl.client.auth=none",  # no client certificates: SCRAM authenticates, so no truststore either
    ]


def _node_properties(node: Node, voters: str, replication: int, data_dir: Path, tls: TlsFiles | None = None) -> str:
    min_isr = 2 if replication >= 3 else 1
    return "\n".join(
        [
            *(FAILOVER_PROPERTIES if replication > 1 else []),
            "process.roles=broker,controller",
            f"node.id={node.node_id}",
            f"controller.quorum.voters={voters}",
            *_listeners(node, tls),
            "controller.listener.names=CONTROLLER",
            f"log.dirs={data_dir}",
            f"offsets.topic.replication.factor={replication}",
            "offsets.topic.num.partitions=12",
            f"transaction.state.log.replication.factor={replication}",
            f"transaction.state.log.min.isr={min_isr}",
            f"default.replication.factor={replication}",
            f"min.insync.replicas={min_isr}",
            "num.partitions=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "log.segment.bytes=67108864",
            "",
        ]
    )


def _wait_for_metadata(cluster: Cluster, deadline: float) -> None:
    from kafka import KafkaAdminClient  # local import: the CLI's --help must not need it

    pending = list(cluster.nodes)
    last_error = ""
    while pending and time.monotonic() < deadline:
        node = pending[0]
        if not pid_alive(node.pid):
            raise KafkaLauncherError(
                f"Kafka node {node.node_id} exited during start-up; its log:\n{_tail(Path(node.dir) / 'server.log')}"
            )
        try:
            # A SASL_SSL cluster is asked on its loopback PLAINTEXT listener: the launcher has no password.
            admin = KafkaAdminClient(
                bootstrap_servers=f"127.0.0.1:{node.internal_port}" if node.internal_port else node.address,
                request_timeout_ms=5000,
                client_id="ticketstream-launcher",
            )
            try:
                brokers = admin.describe_cluster().get("brokers", [])
            finally:
                admin.close()
            if len(brokers) >= len(cluster.nodes):
                pending.pop(0)
                continue
            last_error = f"{len(brokers)} of {len(cluster.nodes)} brokers registered"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.3)
    if pending:
        raise KafkaLauncherError(
            f"Kafka did not serve metadata within {START_TIMEOUT_S:.0f}s ({last_error}); log of node "
            f"{pending[0].node_id}:\n{_tail(Path(pending[0].dir) / 'server.log')}"
        )


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def status(directory: Path) -> Cluster | None:
    """The recorded cluster if at least one of its nodes is running, else None. A cluster with a
    node down still serves (at RF 3), so commands must find it; `node_states` says which is down."""
    cluster = Cluster.load(directory.resolve())
    if cluster and cluster.nodes and any(pid_alive(n.pid) for n in cluster.nodes):
        return cluster
    return None


@dataclass(frozen=True)
class NodeState:
    node: Node
    running: bool


def node_states(directory: Path) -> tuple[Cluster | None, list[NodeState]]:
    """The recorded cluster (running or not) and whether each of its nodes runs."""
    cluster = Cluster.load(directory.resolve())
    if not cluster:
        return None, []
    return cluster, [NodeState(n, pid_alive(n.pid)) for n in cluster.nodes]


def _has_data(directory: Path) -> bool:
    return any(directory.glob("node-*/data/meta.properties"))


def start(
    directory: Path,
    nodes: int | None = None,
    version: str = KAFKA_VERSION,
    heap_mb: int = 512,
    progress: Callable[[str], None] | None = None,
    fresh: bool = False,
    sasl_ssl: SaslSsl | None = None,
) -> Cluster:
    """Start the embedded cluster recorded in `directory`, or a new one if none is recorded;
    return it once every node serves metadata.

    An existing cluster is never deleted here: its data (topics, messages, committed offsets) is
    the point of running it. Nodes that died (kill -9, a reboot) are started again with the same
    cluster id, node ids, ports and data directories, each reported through `progress`. Only
    `fresh=True` (`kafka start --fresh`) stops and wipes the directory and formats a new cluster.
    `nodes` (1 or 3) is for a new cluster; asking an existing cluster for another size is an error.
    `sasl_ssl` makes a new cluster's client listener SASL_SSL (SCRAM-SHA-512 user, TLS from a
    CA made in `sasl_ssl.tls_dir` unless one is there); an existing cluster keeps its protocol.
    """
    if nodes not in (None, 1, 3):
        raise KafkaLauncherError("--nodes must be 1 or 3")
    directory = directory.resolve()
    if fresh:
        stop(directory)
        shutil.rmtree(directory, ignore_errors=True)
    existing = Cluster.load(directory)
    if existing is not None:
        if nodes is not None and len(existing.nodes) != nodes:
            raise KafkaLauncherError(
                f"a {len(existing.nodes)}-node cluster exists in {directory}; start it without --nodes, "
                f"or wipe it and all its data with `ticketstream kafka start --fresh --nodes {nodes}`"
            )
        wanted = "SASL_SSL" if sasl_ssl else None
        if wanted and existing.security_protocol != wanted:
            raise KafkaLauncherError(
                f"the cluster in {directory} listens with {existing.security_protocol}; wipe it and all its data "
                "with `ticketstream kafka start --fresh --sasl-ssl` to make a SASL_SSL one"
            )
        return _restart_dead_nodes(existing, heap_mb, progress)
    if _has_data(directory):
        raise KafkaLauncherError(
            f"{directory} holds Kafka data but no cluster.json (an interrupted first start?); nothing was "
            "deleted. Remove it yourself or run `ticketstream kafka start --fresh` to wipe it"
        )
    return _create(directory, nodes or 1, version, heap_mb, progress, sasl_ssl)


def _restart_dead_nodes(cluster: Cluster, heap_mb: int, progress: Callable[[str], None] | None) -> Cluster:
    dead = [n for n in cluster.nodes if not pid_alive(n.pid)]
    if dead:
        busy = [
            n
            for n in dead
            if not all(_port_free(port) for port in (n.port, n.controller_port, n.internal_port) if port)
        ]
        if busy:
            raise KafkaLauncherError(
                "cannot restart node(s) "
                + ", ".join(f"{n.node_id} (port {n.port}/{n.controller_port})" for n in busy)
                + f" of the cluster in {cluster.dir}: the port is taken by another process; free it and run "
                "`ticketstream kafka start` again (nothing was deleted)"
            )
        java = find_java()
        libs = kafka_libs(cluster.version, progress)
        for node in dead:
            _launch(java, libs, node, heap_mb)
            if progress:
                progress(
                    f"restarted node {node.node_id} (pid {node.pid}, port {node.port}) of cluster {cluster.cluster_id}"
                )
        cluster.save()
    _wait_for_metadata(cluster, time.monotonic() + START_TIMEOUT_S)
    return cluster


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _create(
    directory: Path,
    nodes: int,
    version: str,
    heap_mb: int,
    progress: Callable[[str], None] | None,
    sasl_ssl: SaslSsl | None = None,
) -> Cluster:
    java = find_java()
    libs = kafka_libs(version, progress)
    directory.mkdir(parents=True, exist_ok=True)
    ports = free_ports(3 * nodes)
    cluster = Cluster(dir=str(directory), version=version, cluster_id=_cluster_id())
    tls = None
    scram: list[str] = []
    if sasl_ssl:
        from ticketstream.workers.tls import ensure_ca_and_server

        if any(c in sasl_ssl.username + sasl_ssl.password for c in ",[]=") or not sasl_ssl.username:
            raise KafkaLauncherError(
                "the SCRAM user name and password of the embedded broker may not be empty or hold , [ ] or = "
                "(kafka-storage --add-scram syntax); choose others"
            )
        tls = ensure_ca_and_server(sasl_ssl.tls_dir.resolve())
        cluster.security_protocol = "SASL_SSL"
        cluster.sasl_username = sasl_ssl.username
        cluster.ssl_cafile = str(tls.ca)
        scram = ["--add-scram", f"SCRAM-SHA-512=[name={sasl_ssl.username},password={sasl_ssl.password}]"]
    for i in range(nodes):
        node_dir = directory / f"node-{i + 1}"
        node_dir.mkdir(exist_ok=True)
        cluster.nodes.append(
            Node(
                node_id=i + 1,
                port=ports[3 * i],
                controller_port=ports[3 * i + 1],
                dir=str(node_dir),
                internal_port=ports[3 * i + 2] if tls else 0,
            )
        )
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in cluster.nodes)
    classpath = f"{libs}/*"
    for node in cluster.nodes:
        node_dir = Path(node.dir)
        props = node_dir / "server.properties"
        props.write_text(_node_properties(node, voters, nodes, node_dir / "data", tls))
        (node_dir / "log4j2.properties").write_text(_LOG4J2.format(log=node_dir / "server.log"))
        fmt = subprocess.run(
            [
                java,
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster.cluster_id,
                "-c",
                str(props),
                "--ignore-formatted",
                *scram,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if fmt.returncode != 0:
            raise KafkaLauncherError(
                f"formatting KRaft storage of node {node.node_id} failed:\n{fmt.stdout}{fmt.stderr}"
            )
    if sasl_ssl and tls:
        _write_client_env(cluster, sasl_ssl, tls)
    if progress:
        progress(f"starting {nodes} Kafka {version} node(s) in {directory} ...")
    for node in cluster.nodes:
        _launch(java, libs, node, heap_mb)
    cluster.save()
    try:
        _wait_for_metadata(cluster, time.monotonic() + START_TIMEOUT_S)
    except BaseException:
        stop(directory)
        raise
    return cluster


def client_env_file(cluster: Cluster) -> Path:
    """The shell file with a SASL_SSL cluster's client settings, password included (mode 0600)."""
    return Path(cluster.dir) / "client.env"


def _write_client_env(cluster: Cluster, sasl_ssl: SaslSsl, tls: TlsFiles) -> None:
    path = client_env_file(cluster)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    settings = {
        "BOOTSTRAP_SERVERS": cluster.bootstrap_servers,
        "SECURITY_PROTOCOL": "SASL_SSL",
        "SASL_MECHANISM": "SCRAM-SHA-512",
        "SASL_USERNAME": sasl_ssl.username,
        "SASL_PASSWORD": sasl_ssl.password,
        "SSL_CAFILE": str(tls.ca),
    }
    path.write_text("".join(f"export TICKETSTREAM_{k}={shlex.quote(v)}\n" for k, v in settings.items()))


def _launch(java: str, libs: Path, node: Node, heap_mb: int) -> None:
    """Start one node's JVM in its own session, so it outlives the launching command."""
    node_dir = Path(node.dir)
    with open(node_dir / "stdout.log", "ab") as out:
        proc = subprocess.Popen(
            [
                java,
                f"-Xmx{heap_mb}m",
                f"-Xms{min(heap_mb, 256)}m",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={node_dir / 'log4j2.properties'}",
                "-cp",
                f"{libs}/*",
                "kafka.Kafka",
                str(node_dir / "server.properties"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    node.pid = proc.pid


def _cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64 without padding (22 characters).

    One id in 64 starts with "-", which `kafka-storage format -t` reads as an option and fails
    ("argument --cluster-id/-t: expected one argument"); Kafka's own generator draws again in that
    case, and so do we.
    """
    import base64

    while True:
        candidate = base64.urlsafe_b64encode(random_bytes()).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def stop_node(node: Node, timeout: float = STOP_TIMEOUT_S, hard: bool = False) -> None:
    """Stop one node: SIGTERM (a clean controlled shutdown) or SIGKILL when `hard`."""
    if not pid_alive(node.pid):
        return
    try:
        os.kill(node.pid, signal.SIGKILL if hard else signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while pid_alive(node.pid) and time.monotonic() < deadline:
        _reap(node.pid)
        time.sleep(0.1)
    if pid_alive(node.pid):
        os.kill(node.pid, signal.SIGKILL)
        while pid_alive(node.pid):
            _reap(node.pid)
            time.sleep(0.05)
    _reap(node.pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(directory: Path) -> bool:
    """Stop every node of the cluster recorded in `directory`; True if anything was running."""
    cluster = Cluster.load(directory.resolve())
    if not cluster:
        return False
    was_running = any(pid_alive(n.pid) for n in cluster.nodes)
    for node in cluster.nodes:
        if pid_alive(node.pid):
            os.kill(node.pid, signal.SIGTERM)
    for node in cluster.nodes:
        stop_node(node)
    return was_running
