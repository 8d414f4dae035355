"""The deploy files, checked offline against the code: the image's Dockerfile, the compose stack
(`docker-compose config`), the Helm chart (`helm lint`, `helm template`). No container is built
or run here (no Docker engine, no image registry): what is checked is what can go stale silently:
setting names, ports, topic names, image versions, probes."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.harness import REPO
from ticketstream.settings import ENV_PREFIX, Settings, SettingsError, load_settings
from ticketstream.topology import INBOUND

DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
COMPOSE = REPO / "deploy" / "compose" / "docker-compose.yml"
CHART = REPO / "deploy" / "helm" / "ticketstream"
TOKEN = "0123456789abcdef0123456789abcdef"
PINNED_TAG = re.compile(r"^[\w./-]+(:[\w.-]*\d+\.\d+[\w.-]*)(@sha256:[0-9a-f]{64})?$")


def kafka_version() -> str:
    pom = (REPO / "deploy" / "kafka" / "pom.xml").read_text()
    return re.search(r"<kafka.version>([^<]+)</kafka.version>", pom).group(1)


def setting_names(env: dict) -> set[str]:
    return {name for name in env if name.startswith(ENV_PREFIX)}


def assert_env_is_settings(env: dict, where: str) -> None:
    """Every TICKETSTREAM_* name is a Settings field, and the values load (strict model)."""
    fields = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    unknown = setting_names(env) - fields
    assert not unknown, f"{where}: not settings: {sorted(unknown)}"
    try:
        load_settings(environ={k: str(v) for k, v in env.items() if k.startswith(ENV_PREFIX)})
    except SettingsError as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"{where}: {exc}")


# --- the image ------------------------------------------------------------------------------


def test_dockerfile_is_multistage_pinned_non_root_without_compilers_and_checks_health():
    text = DOCKERFILE.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?", text, re.M)
    assert len(stages) >= 2, "multi-stage"
    for image, _ in stages:
        resolved = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        assert PINNED_TAG.match(resolved) and not resolved.endswith(":latest"), resolved
    final = text[text.rindex("\nFROM ") :]
    assert not re.search(r"\b(gcc|g\+\+|build-essential|make|clang)\b", final), "no compilers in the final stage"
    user = re.search(r"^USER (\S+)", final, re.M).group(1)
    assert user.split(":")[0] not in ("root", "0")
    health = re.search(r"^HEALTHCHECK .*\n?.*", final, re.M).group(0)
    assert "/health'" in health and "6066" in health
    assert str(Settings().web_port) == "6066"
    # The Python of the base satisfies the package's requires-python.
    python = re.search(r"python:(\d+)\.(\d+)", args["PYTHON_IMAGE"]).groups()
    assert (int(python[0]), int(python[1])) >= (3, 11)
    for source in re.findall(r"^COPY (?!--)(.+) \S+$", text, re.M):
        for name in source.split():
            assert (REPO / name).exists(), f"COPY {name}: no such file"
    env = dict(re.findall(r"(TICKETSTREAM_\w+)=(\S+)", final))
    assert_env_is_settings({**env, "TICKETSTREAM_LOOKUP_TOKEN": TOKEN}, "Dockerfile ENV")


# --- the compose stack ----------------------------------------------------------------------


def compose_config(tmp_path: Path, with_token: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    if with_token:
        env["TICKETSTREAM_LOOKUP_TOKEN"] = TOKEN
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose (Debian's package) is installed by deploy/bootstrap.sh --with-monitoring"
    return subprocess.run(
        [binary, "-f", str(COMPOSE), "config"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def compose(tmp_path_factory) -> dict:
    result = compose_config(tmp_path_factory.mktemp("compose"))
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_refuses_to_render_without_a_lookup_token(tmp_path: Path):
    result = compose_config(tmp_path, with_token=False)
    assert result.returncode != 0 and "TICKETSTREAM_LOOKUP_TOKEN" in result.stderr


def test_compose_runs_three_kraft_brokers_of_the_embedded_release(compose):
    brokers = {name: svc for name, svc in compose["services"].items() if name.startswith("kafka-")}
    assert len(brokers) == 3
    voters = set()
    for name, svc in brokers.items():
        assert svc["image"] == f"apache/kafka:{kafka_version()}"
        env = svc["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        voters.add(env["KAFKA_CONTROLLER_QUORUM_VOTERS"])
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
    assert len(voters) == 1 and len(voters.pop().split(",")) == 3
    servers = compose["services"]["worker"]["environment"]["TICKETSTREAM_BOOTSTRAP_SERVERS"].split(",")
    assert sorted(servers) == [f"{name}:9092" for name in sorted(brokers)]


def test_compose_images_are_pinned_and_host_ports_stay_on_loopback(compose):
    for name, svc in compose["services"].items():
        assert PINNED_TAG.match(svc["image"]) and not svc["image"].endswith(":latest"), f"{name}: {svc['image']}"
        for port in svc.get("ports", []):
            published = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port['published']}"
            assert published.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_compose_workers_scale_and_every_service_speaks_real_settings(compose):
    services = compose["services"]
    worker = services["worker"]
    assert "ports" not in worker and "container_name" not in worker, "--scale worker=N needs neither"
    assert str(Settings().web_port) in [str(p) for p in worker["expose"]]
    assert worker["environment"]["TICKETSTREAM_LOOKUP_TOKEN"] == TOKEN
    assert "worker" in " ".join(worker["entrypoint"]) and "TICKETSTREAM_WEB_ADVERTISED_HOST" in " ".join(
        worker["entrypoint"]
    )
    assert services["topics"]["command"] == ["topics", "create"]
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    for name, svc in services.items():
        env = svc.get("environment") or {}
        if setting_names(env):
            assert_env_is_settings(env, f"compose service {name}")
    archiver = services["archiver"]
    assert archiver["environment"]["TICKETSTREAM_ARCHIVE_DB"].startswith("postgresql+psycopg://")
    assert archiver["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "http://alertmanager:9093" in services["alert-bridge"]["command"]


def test_compose_prometheus_scrapes_the_ports_the_services_serve_and_loads_the_rules(compose):
    services = compose["services"]
    prom = yaml.safe_load((COMPOSE.parent / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prom["scrape_configs"]}
    assert jobs["ticketstream-workers"]["dns_sd_configs"][0] == {
        "names": ["worker"],
        "type": "A",
        "port": Settings().web_port,
        "refresh_interval": "15s",
    }
    archiver_port = services["archiver"]["environment"]["TICKETSTREAM_ARCHIVE_METRICS_PORT"]
    assert jobs["ticketstream-archiver"]["static_configs"][0]["targets"] == [f"archiver:{archiver_port}"]
    bridge = services["alert-bridge"]["command"]
    assert jobs["ticketstream-alert-bridge"]["static_configs"][0]["targets"] == [
        f"alert-bridge:{bridge[bridge.index('--metrics-port') + 1]}"
    ]
    for rule_file in prom["rule_files"]:
        assert (REPO / "monitoring" / rule_file).is_file(), rule_file
    mounts = " ".join(
        services["prometheus"]["volumes"]
        if isinstance(services["prometheus"]["volumes"][0], str)
        else [v["source"] for v in services["prometheus"]["volumes"]]
    )
    assert "monitoring/rules" in mounts
    grafana = " ".join(
        v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in services["grafana"]["volumes"]
    )
    assert "monitoring/grafana/dashboards" in grafana and "provisioning/dashboards" in grafana
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by deploy/bootstrap.sh --with-monitoring"
    rules = REPO / "monitoring"
    check = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(COMPOSE.parent / "prometheus.yml")],
        capture_output=True,
        text=True,
        cwd=rules,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr


# --- the Helm chart -------------------------------------------------------------------------


def helm() -> str:
    found = Path(sys.executable).parent / "helm"
    binary = str(found) if found.exists() else shutil.which("helm")
    assert binary, "helm is built into .venv/bin by deploy/bootstrap.sh --with-monitoring"
    return binary


VALUES = [
    "--set",
    "kafka.bootstrapServers=kafka-0.kafka:9092\\,kafka-1.kafka:9092",
    "--set",
    f"secrets.lookupToken={TOKEN}",
    "--set",
    "secrets.archiveDb=postgresql+psycopg://ts:pw@postgres:5432/ticketstream",
    "--set",
    "kafka.securityProtocol=SASL_SSL",
    "--set",
    "kafka.saslMechanism=SCRAM-SHA-512",
    "--set",
    "kafka.saslUsername=ticketstream",
    "--set",
    "kafka.saslPassword=kafka-secret",
    "--set",
    "kafka.tlsSecretName=kafka-ca",
]


def render(*extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [helm(), "template", "ts", str(CHART), *VALUES, *extra], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def chart() -> dict[tuple[str, str], dict]:
    result = render("--set", "autoscaling.keda.enabled=true")
    assert result.returncode == 0, result.stderr
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(result.stdout) if doc}


def test_helm_lint_passes():
    result = subprocess.run(
        [helm(), "lint", "--strict", str(CHART), *VALUES], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_helm_refuses_a_release_without_brokers_or_lookup_token():
    bare = subprocess.run([helm(), "template", "ts", str(CHART)], capture_output=True, text=True, timeout=120)
    assert bare.returncode != 0 and "kafka.bootstrapServers is required" in bare.stderr
    no_token = subprocess.run(
        [
            helm(),
            "template",
            "ts",
            str(CHART),
            "--set",
            "kafka.bootstrapServers=k:9092",
            "--set",
            "secrets.archiveDb=postgresql+psycopg://a:b@c/d",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert no_token.returncode != 0 and "lookupToken" in no_token.stderr


def test_helm_chart_renders_every_part_with_real_settings(chart):
    kinds = sorted(kind for kind, _ in chart)
    assert kinds.count("StatefulSet") == 1 and kinds.count("Deployment") == 2
    for kind in ("PodDisruptionBudget", "Job", "ConfigMap", "Secret", "ScaledObject", "Service"):
        assert kind in kinds
    config = next(doc for (kind, _), doc in chart.items() if kind == "ConfigMap")["data"]
    secret = next(doc for (kind, _), doc in chart.items() if kind == "Secret")["stringData"]
    assert secret["TICKETSTREAM_LOOKUP_TOKEN"] == TOKEN and secret["TICKETSTREAM_SASL_PASSWORD"] == "kafka-secret"
    assert not setting_names(config) & setting_names(secret), "a setting in both the ConfigMap and the Secret"
    assert_env_is_settings({**config, **secret, "TICKETSTREAM_WEB_ADVERTISED_HOST": "10.0.0.1"}, "chart settings")
    settings = load_settings(environ={**config, **secret})
    assert settings.web_exposed and settings.lookup_token is not None and settings.security_protocol == "SASL_SSL"


def test_helm_workers_keep_their_state_probe_health_and_are_sized(chart):
    worker = next(doc for (kind, _), doc in chart.items() if kind == "StatefulSet")
    spec = worker["spec"]
    assert spec["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    container = spec["template"]["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == "/var/lib/ticketstream" and mounts["kafka-tls"] == "/etc/ticketstream/tls"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["web"]
    assert port == Settings().web_port
    advertised = {e["name"]: e for e in container["env"]}["TICKETSTREAM_WEB_ADVERTISED_HOST"]
    assert advertised["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    requests = container["resources"]["requests"]
    assert (
        requests["cpu"] == "1" and requests["memory"] == "1Gi" and container["resources"]["limits"]["memory"] == "2Gi"
    )
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    pdb = next(doc for (kind, _), doc in chart.items() if kind == "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert "replicas" not in spec, "with KEDA the ScaledObject owns the replica count"


def test_helm_topics_job_and_keda_trigger_name_the_codes_topics_and_group(chart):
    job = next(doc for (kind, _), doc in chart.items() if kind == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["topics", "create"]
    scaled = next(doc for (kind, _), doc in chart.items() if kind == "ScaledObject")
    trigger = scaled["spec"]["triggers"][0]
    config = next(doc for (kind, _), doc in chart.items() if kind == "ConfigMap")["data"]
    secret = next(doc for (kind, _), doc in chart.items() if kind == "Secret")["stringData"]
    settings = load_settings(environ={**config, **secret})  # SASL_SSL needs the Secret's password too
    assert trigger["type"] == "kafka" and trigger["metadata"]["topic"] == settings.topic(INBOUND)
    assert trigger["metadata"]["consumerGroup"] == settings.app_id
    assert scaled["spec"]["maxReplicaCount"] <= settings.partitions
    prefixed = render("--set", "autoscaling.keda.enabled=true", "--set", "settings.topic_prefix=prod.")
    assert 'topic: "prod.tickets.inbound"' in prefixed.stdout
    too_many = render("--set", "autoscaling.keda.enabled=true", "--set", "autoscaling.keda.maxReplicas=24")
    assert too_many.returncode != 0 and "partitions" in too_many.stderr
