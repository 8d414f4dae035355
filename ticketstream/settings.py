"""Runtime settings of every ticketstream process: one model, read from a file and env vars.

Precedence, lowest first: the defaults below, an optional TOML file (``--config FILE`` or
``TICKETSTREAM_CONFIG``), environment variables ``TICKETSTREAM_<FIELD>`` (upper case), and
explicit overrides from the command line. A wrong value stops the process at start-up with a
message that names the setting and where it came from, never deep inside Kafka code.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

ENV_PREFIX = "TICKETSTREAM_"
_TOPIC_PREFIX_RE = re.compile(r"^[A-Za-z0-9._-]*$")
_HOSTPORT_RE = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


class SettingsError(ValueError):
    """A setting is wrong; the message names it and says what is expected."""


class Settings(BaseModel):
    """Everything a worker, publisher or simulator needs to reach Kafka and serve metrics."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str | None = Field(
        default=None,
        description="Kafka bootstrap servers, comma separated host:port. Unset: the demo "
        "starts the embedded broker; other commands use the running embedded broker.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="How every client (worker, publisher, CLI commands, archiver, alert bridge) speaks to "
        "Kafka: SSL encrypts and checks the broker's certificate; SASL_* also log in with sasl_username.",
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL mechanism (default SCRAM-SHA-512 when security_protocol is SASL_*)."
    )
    sasl_username: str | None = Field(default=None, description="SASL user; required with SASL_*.")
    sasl_password: SecretStr | None = Field(
        default=None, description="SASL password; required with SASL_*. Never printed or logged."
    )
    ssl_cafile: Path | None = Field(
        default=None,
        description="PEM file of the CA(s) that signed the brokers' certificates (SSL, SASL_SSL); "
        "unset: the system's trusted CAs.",
    )
    ssl_certfile: Path | None = Field(
        default=None, description="Client certificate (PEM) for brokers that require one (mutual TLS)."
    )
    ssl_keyfile: Path | None = Field(default=None, description="Private key (PEM) of ssl_certfile, if apart.")
    ssl_check_hostname: bool = Field(
        default=True,
        description="Whether the broker's certificate must name the host connected to. Turn off only "
        "for brokers reached by an address their certificate does not list.",
    )
    topic_prefix: str = Field(default="", description="Prepended to every topic name, e.g. 'prod.'.")
    app_id: str = Field(default="ticketstream", description="Kafka consumer group / Faust app id.")
    partitions: int = Field(default=12, ge=1, le=10_000)
    replication_factor: int | None = Field(
        default=None,
        ge=1,
        le=15,
        description="Replication factor of the topics ticketstream creates. Unset: min(3, brokers), "
        "with min.insync.replicas 2 at 3 (`ticketstream.topology.replication`).",
    )
    web_host: str = Field(
        default="127.0.0.1",
        description="Address the worker's web server binds to (/metrics, /health, /tickets/{id}). Anything but "
        "loopback needs lookup_token: the ticket lookup returns customers' names and phones.",
    )
    web_port: int = Field(default=6066, ge=1, le=65_535)
    web_advertised_host: str | None = Field(
        default=None,
        description="Host other workers use to reach this one when they forward a /tickets lookup to the owner "
        "of the key (default: web_host). Set it (pod IP, container address) when web_host is 0.0.0.0, else every "
        "worker advertises 0.0.0.0 and answers lookups only for its own partitions.",
    )
    lookup_token: SecretStr | None = Field(
        default=None,
        description="Bearer token that GET /tickets/{id} requires (at least 16 characters). Required when "
        "web_host is not loopback; when set it is required on loopback too. /metrics and /health stay open.",
    )
    data_dir: Path = Field(default=Path(".ticketstream/worker"))
    store: Literal["memory", "rocksdb"] = "memory"
    rocksdb_write_buffer_mb: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="RocksDB store: memtable size per table partition (two are kept). Bounds the "
        "memory of recent writes; Faust's default of 3 x 64 MB per partition is sized for big hosts.",
    )
    rocksdb_block_cache_mb: int = Field(
        default=16,
        ge=1,
        le=65_536,
        description="RocksDB store: read cache per table partition (Faust's default: 2 GB each).",
    )
    dlq_original: Literal["masked", "raw"] = Field(
        default="masked",
        description="How dead-letter records carry the original bytes: 'masked' hides personal "
        "data (DOMAIN §8); 'raw' keeps them byte-exact for a dead-letter topic with restricted access.",
    )
    classifier_rules: Path | None = Field(default=None, description="Classifier rule file (default: shipped).")
    triage_model: Path | None = Field(
        default=None, description="Learned triage model file (`ticketstream triage train`; default: shipped)."
    )
    grading_rules: Path | None = Field(default=None, description="Grading rule file (default: shipped).")
    routing_rules: Path | None = Field(default=None, description="Routing table file (default: shipped).")
    sla_policy: Path | None = Field(default=None, description="SLA policy file (default: shipped).")
    calendar: Path | None = Field(default=None, description="Working-calendar overrides file (default: shipped).")
    sla_tick_seconds: float = Field(
        default=0.25, gt=0, le=60, description="How often a worker looks for due thresholds."
    )
    incident_policy: Path | None = Field(default=None, description="Mass-incident detection policy (default: shipped).")
    overload_breaches_5m: int = Field(
        default=10, ge=1, description="Team-overload alert: breaches of one team/grade/stage in 5 minutes."
    )
    overload_breaches_1h: int = Field(default=50, ge=1, description="Team-overload alert: the same in 1 hour.")
    producer_linger_ms: int = Field(
        default=100,
        ge=0,
        le=1000,
        description="How long a worker's producer waits to fill a batch. A complaint is triaged and "
        "routed in the step that accepts it (one more hop when it arrives off its home partition), so a "
        "team's queue sees it about one linger later, and an SLA breach takes a tick's hop and its own record: "
        "this trades latency for throughput: 25 ms took a worker from about 1,600 to 2,000 events/s against 5 ms "
        "(bench_intake.py); 100 ms cut a worker's CPU per fresh complaint by 8-17 % against 25 ms "
        "(bench_pipeline.py --complaints-only), with the SLA breach latency's p99 at 0.27-0.46 s (bench_sla.py).",
    )
    connect_timeout_seconds: float = Field(
        default=10,
        gt=0,
        le=600,
        description="How long a command or client waits for the first answer of the bootstrap servers "
        "before it says it cannot reach Kafka.",
    )
    broker_wait_seconds: float = Field(
        default=60,
        ge=0,
        le=86_400,
        description="How long a starting worker keeps retrying an unreachable Kafka (saying that it "
        "waits) before it gives up with an error; brokers and workers often start together.",
    )
    stop_timeout_seconds: float = Field(
        default=30,
        gt=0,
        le=3600,
        description="After SIGTERM/SIGINT a worker commits and leaves its group; if that takes longer "
        "(brokers gone), it exits anyway.",
    )
    archive_db: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the archive: sqlite:///FILE or postgresql+psycopg://user:pw@host/db. "
        "Unset: the SQLite file archive.db under data_dir.",
    )
    archive_pii: Literal["encrypt", "mask"] = Field(
        default="mask",
        description="How the archive stores personal data (name, phone, national ID, address): 'mask' keeps "
        "only masked values (nothing to leak, nothing to recover); 'encrypt' keeps masked values plus the "
        "originals encrypted with archive_key, readable with `tickets show --reveal`.",
    )
    archive_key: SecretStr | None = Field(
        default=None,
        description="Fernet key for archive_pii = 'encrypt' (`ticketstream archive keygen`); comma-separate "
        "several to rotate: the first encrypts, any decrypts.",
    )
    archive_retention: str = Field(
        default="3y",
        description="How long the archive keeps a ticket after it was received (DOMAIN §8: at least 3 years); "
        "`archive purge` removes older ones. N followed by y, m (months) or d.",
    )
    archive_metrics_port: int = Field(
        default=6069, ge=0, le=65_535, description="The archiver's /metrics port (0: none)."
    )
    archive_batch_size: int = Field(
        default=2000,
        ge=1,
        le=100_000,
        description="Records the archiver writes per database transaction (and then commits offsets for).",
    )
    kafka_dir: Path = Field(default=Path(".ticketstream/kafka"), description="Embedded broker state and logs.")
    log_level: Literal["debug", "info", "warn", "error"] = "info"

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        servers = [s.strip() for s in value.split(",") if s.strip()]
        bad = [s for s in servers if not _HOSTPORT_RE.match(s)]
        if bad or not servers:
            raise ValueError(f"expected comma-separated host:port, got {bad or value!r}")
        return ",".join(servers)

    @field_validator("sasl_mechanism", "sasl_username", "ssl_cafile", "ssl_certfile", "ssl_keyfile", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """An empty value (e.g. `TICKETSTREAM_SSL_CAFILE=` in a container spec) means unset, not '.'."""
        return None if isinstance(value, str) and value.strip() == "" else value

    @field_validator("sasl_password")
    @classmethod
    def _empty_password_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is not None and value.get_secret_value() == "" else value

    @field_validator("lookup_token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        if len(value.get_secret_value()) < 16:
            raise ValueError("a lookup token needs at least 16 characters (e.g. `openssl rand -hex 32`)")
        return value

    @property
    def web_exposed(self) -> bool:
        """Whether the worker's web server is reachable from beyond this machine (then the ticket
        lookup, which returns personal data, must be guarded by lookup_token)."""
        return not is_loopback(self.web_host)

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _TOPIC_PREFIX_RE.match(value) or len(value) > 100:
            raise ValueError("only letters, digits, '.', '_' and '-' (at most 100) may form a topic prefix")
        return value

    @field_validator("archive_retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        from ticketstream.archive.retention import parse_age

        parse_age(value)
        return value

    @property
    def archive_url(self) -> str:
        """The archive's SQLAlchemy URL (the SQLite default under data_dir when unset)."""
        return self.archive_db or f"sqlite:///{self.data_dir / 'archive.db'}"

    @field_validator("app_id")
    @classmethod
    def _app_id(cls, value: str) -> str:
        if not value or not _TOPIC_PREFIX_RE.match(value):
            raise ValueError("app_id must be non-empty letters, digits, '.', '_' or '-'")
        return value

    def as_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """These settings as TICKETSTREAM_* variables (over `base`), to hand to a child process."""
        env = dict(os.environ if base is None else base)
        env.pop(ENV_PREFIX + "CONFIG", None)
        for name, value in self.model_dump(mode="json").items():
            if value is not None:
                env[f"{ENV_PREFIX}{name.upper()}"] = str(value)
        if self.sasl_password:
            env[ENV_PREFIX + "SASL_PASSWORD"] = self.sasl_password.get_secret_value()
        if self.archive_key:
            env[ENV_PREFIX + "ARCHIVE_KEY"] = self.archive_key.get_secret_value()
        if self.lookup_token:
            env[ENV_PREFIX + "LOOKUP_TOKEN"] = self.lookup_token.get_secret_value()
        return env

    def topic(self, name: str) -> str:
        """The full Kafka topic name of a logical topic (prefix applied)."""
        return f"{self.topic_prefix}{name}"

    def kafka_connect_options(self) -> dict[str, Any]:
        """kafka-python's bootstrap deadline (not an aiokafka option, hence apart)."""
        return {"bootstrap_timeout_ms": int(self.connect_timeout_seconds * 1000)}

    def kafka_client_options(self) -> dict[str, Any]:
        """Security options of every Kafka client, in the spelling kafka-python and aiokafka share
        (the worker's Faust credentials are made from these too): the one place they are built."""
        opts: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol in ("SSL", "SASL_SSL"):
            opts["ssl_context"] = self.ssl_context()
        if self.security_protocol.startswith("SASL"):
            opts["sasl_mechanism"] = self.sasl_mechanism or "SCRAM-SHA-512"
            opts["sasl_plain_username"] = self.sasl_username
            opts["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        return opts

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context of a client: verify the broker against ssl_cafile (or the system's CAs),
        check its name unless ssl_check_hostname is off, present ssl_certfile if set.

        The files are read here, when a process first connects, not when the settings are loaded:
        settings describe a deployment and are checked where the files are not (a chart's values
        on a build machine); a missing or unreadable file is a SettingsError naming the setting."""
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise SettingsError(f"setting '{name}': {path} does not exist or is not a file")
        try:
            context = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError(
                f"setting 'ssl_cafile': cannot read CA certificates from {self.ssl_cafile}: {exc}"
            ) from None
        context.check_hostname = self.ssl_check_hostname
        if self.ssl_certfile:
            try:
                context.load_cert_chain(str(self.ssl_certfile), str(self.ssl_keyfile) if self.ssl_keyfile else None)
            except (OSError, ssl.SSLError) as exc:
                raise SettingsError(
                    f"settings 'ssl_certfile'/'ssl_keyfile': cannot load the client certificate {self.ssl_certfile}: {exc}"
                ) from None
        return context

    @model_validator(mode="after")
    def _security(self) -> Settings:
        """The security settings fit together (each message names the setting to change)."""
        protocol = self.security_protocol
        if protocol.startswith("SASL"):
            if not self.sasl_username:
                raise _Named(
                    "sasl_username", f"security_protocol {protocol} needs a SASL user: set {ENV_PREFIX}SASL_USERNAME"
                )
            if self.sasl_password is None:
                raise _Named(
                    "sasl_password",
                    f"security_protocol {protocol} needs a SASL password: set {ENV_PREFIX}SASL_PASSWORD",
                )
        else:
            for name in ("sasl_mechanism", "sasl_username", "sasl_password"):
                if getattr(self, name) is not None:
                    raise _Named(name, f"is set but security_protocol is {protocol}, which does not use SASL")
        tls = protocol in ("SSL", "SASL_SSL")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, name) is not None and not tls:
                raise _Named(name, f"is set but security_protocol is {protocol}, which does not use TLS")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise _Named("ssl_keyfile", "is set without ssl_certfile (the client certificate it belongs to)")
        return self


class _Named(ValueError):
    """A cross-setting problem that belongs to one setting (so the error says where it came from)."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach: 127.0.0.0/8, ::1 and 'localhost'. Any other
    name counts as exposed, since what it resolves to is not ours to know (0.0.0.0 binds everywhere)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _from_env(environ: Mapping[str, str]) -> dict[str, str]:
    fields = set(Settings.model_fields)
    found: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX) :].lower()
            if name in fields:
                found[name] = value
    return found


def _from_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise SettingsError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    section = data.get("ticketstream", data)
    return section if isinstance(section, dict) else data


def load_settings(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings from file, environment and overrides; raise SettingsError on bad values."""
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    config_file = config_file or environ.get(ENV_PREFIX + "CONFIG")
    if config_file:
        for key, value in _from_file(Path(config_file)).items():
            merged[key] = value
            sources[key] = f"config file {config_file}"
    for key, value in _from_env(environ).items():
        merged[key] = value
        sources[key] = f"env {ENV_PREFIX}{key.upper()}"
    for key, value in overrides.items():
        if value is not None:
            merged[key] = value
            sources[key] = "command line"
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            cause = (err.get("ctx") or {}).get("error")
            message = err["msg"]
            where = f"from {sources.get(name.split('.')[0], 'default')}"
            if isinstance(cause, _Named):
                name, message = cause.setting, str(cause)
                where = f"from {sources[name]}" if name in sources else "unset"
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown setting '{name}' ({where})")
            else:
                problems.append(f"setting '{name}' ({where}): {message}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None
