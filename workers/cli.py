"""The `ticketstream` command: every process and tool of the system behind one entry point."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, TextIO

from ticketstream.policyfile import PolicyError
from ticketstream.settings import Settings, SettingsError, load_settings
from ticketstream.sla.calendar import CalendarError

DESCRIPTION = """\
ticketstream: a Kafka + Faust stream processor for telecom complaint tickets (投訴工單).

Channel systems publish complaint events to Kafka; workers validate, de-duplicate, classify,
grade, route and time them. Settings come from --config FILE (TOML), TICKETSTREAM_* environment
variables (e.g. TICKETSTREAM_BOOTSTRAP_SERVERS=host:9092) and the options below.
With no bootstrap servers configured, commands use the embedded broker of `ticketstream kafka start`.
"""


def _common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection and settings")
    group.add_argument("--config", metavar="FILE", help="TOML settings file (also TICKETSTREAM_CONFIG)")
    group.add_argument("--bootstrap-servers", metavar="HOST:PORT[,...]", help="Kafka bootstrap servers")
    group.add_argument("--topic-prefix", metavar="PREFIX", help="prefix of every topic name")
    group.add_argument("--app-id", metavar="ID", help="consumer group / Faust app id (default ticketstream)")
    group.add_argument("--partitions", type=int, metavar="N", help="partitions per topic (default 12)")
    group.add_argument("--web-port", type=int, metavar="PORT", help="worker web port for /metrics (default 6066)")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        args.config,
        bootstrap_servers=args.bootstrap_servers,
        topic_prefix=args.topic_prefix,
        app_id=args.app_id,
        partitions=args.partitions,
        web_port=args.web_port,
        classifier_rules=getattr(args, "classifier_rules", None),
        triage_model=getattr(args, "model", None),
        grading_rules=getattr(args, "grading_rules", None),
        routing_rules=getattr(args, "routing_rules", None),
    )


_BOOTSTRAP: list[str | None] = [None]
"""The address the command connects to, for the error line when it cannot."""
_PROTOCOL: list[str] = ["PLAINTEXT"]
"""The security protocol it speaks there, to tell a mismatch from a broker that is down."""


def _connected(settings: Settings, check: bool = True) -> Settings:
    """The settings with bootstrap servers: configured ones, or the running embedded broker's.
    With SASL/TLS configured, a refused login ends the command here, in a second, with one line
    (`check=False` for the worker, whose wait for the broker checks the login once it answers)."""
    from ticketstream.workers.connect import check_security

    if not settings.bootstrap_servers:
        from ticketstream.workers import embedded_kafka

        cluster = embedded_kafka.status(settings.kafka_dir)
        if not cluster:
            raise SettingsError(
                "no Kafka is configured and no embedded broker is running: set TICKETSTREAM_BOOTSTRAP_SERVERS "
                "(or --bootstrap-servers), or start one with `ticketstream kafka start`"
            )
        if cluster.security_protocol != settings.security_protocol:
            raise SettingsError(
                f"setting 'security_protocol' is {settings.security_protocol}, but the embedded broker in "
                f"{cluster.dir} listens with {cluster.security_protocol}: load its client settings with "
                f"`. {embedded_kafka.client_env_file(cluster)}`"
            )
        settings = settings.model_copy(update={"bootstrap_servers": cluster.bootstrap_servers})
    _BOOTSTRAP[0], _PROTOCOL[0] = settings.bootstrap_servers, settings.security_protocol
    if check:
        check_security(settings)
    return settings


def cmd_kafka(args: argparse.Namespace) -> int:
    from ticketstream.workers import embedded_kafka

    settings = _settings(args)
    directory = Path(args.dir) if args.dir else settings.kafka_dir
    if args.action == "start":
        sasl_ssl = None
        if args.sasl_ssl:
            import secrets

            password = settings.sasl_password.get_secret_value() if settings.sasl_password else None
            sasl_ssl = embedded_kafka.SaslSsl(
                username=settings.sasl_username or "ticketstream",
                password=password or secrets.token_urlsafe(18),
                tls_dir=Path(args.ca_dir) if args.ca_dir else directory / "tls",
            )
        cluster = embedded_kafka.start(
            directory,
            nodes=args.nodes,
            fresh=args.fresh,
            progress=lambda m: print(m, file=sys.stderr),
            sasl_ssl=sasl_ssl,
        )
        print(f"Kafka {cluster.version} running: {cluster.bootstrap_servers} (cluster {cluster.cluster_id})")
        if cluster.security_protocol == "PLAINTEXT":
            print(f"export TICKETSTREAM_BOOTSTRAP_SERVERS={cluster.bootstrap_servers}")
        else:
            print(
                f"{cluster.security_protocol} (SCRAM-SHA-512 user {cluster.sasl_username!r}, CA {cluster.ssl_cafile}); "
                f"client settings with the password: . {embedded_kafka.client_env_file(cluster)}"
            )
        print(f"logs: {', '.join(str(Path(n.dir) / 'server.log') for n in cluster.nodes)}")
        return 0
    if args.action == "stop":
        print("stopped" if embedded_kafka.stop(directory) else f"no embedded Kafka was running in {directory}")
        return 0
    cluster, states = embedded_kafka.node_states(directory)
    if not cluster:
        print(f"no embedded cluster in {directory} (start one with `ticketstream kafka start`)")
        return 1
    up = sum(s.running for s in states)
    word = "running" if up == len(states) else "degraded" if up else "not running"
    print(
        f"{word}: {up} of {len(states)} node(s) up, cluster {cluster.cluster_id}, Kafka {cluster.version}, "
        f"bootstrap {cluster.bootstrap_servers}"
        + (
            ""
            if cluster.security_protocol == "PLAINTEXT"
            else f" ({cluster.security_protocol}, client settings: {embedded_kafka.client_env_file(cluster)})"
        )
    )
    for state in states:
        node = state.node
        print(
            f"  node {node.node_id}: {'running' if state.running else 'dead':7} pid {node.pid}, port {node.port}, "
            f"controller port {node.controller_port}, log {Path(node.dir) / 'server.log'}"
        )
    if up < len(states):
        print("  `ticketstream kafka start` restarts the dead node(s) with their data")
    return 0 if up == len(states) else 1


def cmd_topics(args: argparse.Namespace) -> int:
    from ticketstream.workers.topics import create_topics, describe_topics

    settings = _connected(_settings(args))
    if args.action == "copy-history":
        from ticketstream.workers.history_migration import copy_legacy_history, legacy_changelog

        entries, customers = copy_legacy_history(settings, say=lambda m: print(m, flush=True))
        print(f"copied {entries} history entries of {customers} customers from {legacy_changelog(settings)}")
        return 0
    if args.action == "create":
        for result in create_topics(settings):
            state = "created" if result.created else "exists"
            note = f"  ({result.note})" if result.note else ""
            print(f"{state:8} {result.name}  partitions={result.partitions}{note}")
        return 0
    rows = describe_topics(settings)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for row in rows:
        if not row["exists"]:
            print(f"MISSING  {row['topic']}  ({row['purpose']})")
            continue
        cfg = ", ".join(f"{k}={v}" for k, v in sorted(row["config"].items()))  # type: ignore[union-attr]
        print(f"{row['topic']}  partitions={row['partitions']} rf={row['replication_factor']} key={row['key']}  {cfg}")
    return 0


def cmd_lag(args: argparse.Namespace) -> int:
    from ticketstream.workers.lag import consumer_lag

    settings = _connected(_settings(args))
    rows = consumer_lag(settings, args.group)
    if not rows:
        print("no committed offsets" + (f" for group(s) {', '.join(args.group)}" if args.group else ""))
        return 1 if args.group else 0
    width = max(len(f"{r.topic}[{r.partition}]") for r in rows)
    for group in dict.fromkeys(r.group for r in rows):
        mine = [r for r in rows if r.group == group]
        print(f"group {group}: total lag {sum(r.lag for r in mine)}")
        for r in mine:
            committed = "-" if r.committed is None else str(r.committed)
            print(
                f"  {f'{r.topic}[{r.partition}]':{width}}  committed {committed:>10}  end {r.end:>10}  lag {r.lag:>8}"
            )
    if args.max is not None:
        over = [r for r in rows if r.lag > args.max]
        if over:
            print(
                f"ticketstream: {len(over)} partition(s) lag more than {args.max} (largest {max(r.lag for r in over)})",
                file=sys.stderr,
            )
            return 1
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from ticketstream.workers.worker import run_worker

    run_worker(_connected(_settings(args), check=False), ensure_topics=not args.no_create_topics)
    return 0


def _serve_metrics(settings: Settings, port: int) -> None:
    """/metrics of a long-running command other than the worker (alert bridge, publish,
    simulate), if a port is given; a busy port is a clear error at start."""
    if not port:
        return
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=settings.web_host)
    except OSError as exc:
        raise SettingsError(
            f"--metrics-port {port}: cannot serve /metrics on {settings.web_host}:{port} ({exc}); "
            "choose a free port, or 0 for none"
        ) from exc
    print(f"metrics on http://{settings.web_host}:{port}/metrics", file=sys.stderr)


def cmd_publish(args: argparse.Namespace) -> int:
    from ticketstream.workers.publisher import PublishUnreachable, publish_file

    settings = _connected(_settings(args))
    _serve_metrics(settings, args.metrics_port)
    try:
        report = publish_file(args.file, settings, rate=args.rate)
    except PublishUnreachable as exc:
        print(
            f"validated every line: {exc.report.unsent} valid, {len(exc.report.rejected)} rejected; nothing was sent",
            file=sys.stderr,
        )
        raise exc.cause from None
    print(
        f"published {report.sent} event(s); rejected {len(report.rejected)} line(s); send failures {report.failed}",
        file=sys.stderr,
    )
    return 0 if report.ok else 1


def cmd_simulate(args: argparse.Namespace) -> int:
    from ticketstream.simulation import Shares
    from ticketstream.workers.simulator import run_simulation

    settings = _connected(_settings(args))
    _serve_metrics(settings, args.metrics_port)
    shares = Shares(malformed=args.malformed, duplicate=args.duplicates)
    report = run_simulation(
        settings,
        rate=args.rate,
        duration=args.duration,
        seed=args.seed,
        time_scale=args.time_scale,
        drain=args.drain,
        fast=args.fast,
        shares=shares,
        incident_city=args.incident,
        progress=sys.stderr,
    )
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(report.sent.items()))
    print(
        f"sent {report.total} message(s) ({kinds}); {report.skipped_after_window} lifecycle event(s) fell after "
        f"the drain window; send failures {report.failed}",
        file=sys.stderr,
    )
    return 0 if not report.failed else 1


def cmd_classify(args: argparse.Namespace) -> int:
    from ticketstream.engines import triage_engine
    from ticketstream.workers.classify import classify_lines

    engine = triage_engine(_settings(args))
    errors = 0
    with _input(args.file) as source:
        for result in classify_lines(source, engine, full=args.full):
            errors += "error" in result
            print(json.dumps(result, ensure_ascii=False), flush=False)
    sys.stdout.flush()
    if errors:
        print(f"{errors} line(s) could not be classified", file=sys.stderr)
    return 1 if errors else 0


def cmd_triage(args: argparse.Namespace) -> int:
    """`triage train|evaluate|corrections`: the learned model's life cycle."""
    if args.action == "train":
        from ticketstream.triage.training import TrainingParams, load_examples, train

        if not args.out:
            raise SettingsError("triage train needs --out FILE, the model file to write")
        examples = load_examples(args.examples)
        defaults = TrainingParams()
        params = TrainingParams(
            min_df=args.min_df,
            c_category=args.c_category or defaults.c_category,
            c_grade=args.c_grade or defaults.c_grade,
        )
        model, reports = train(examples, params, progress=lambda m: print(m, file=sys.stderr))
        try:
            model.save(args.out)
        except OSError as exc:
            raise SettingsError(f"--out {args.out}: cannot write the model ({exc.strerror})") from None
        for name, report in reports.items():
            print(
                f"{name}: {report.examples} examples, out-of-fold accuracy {report.out_of_fold_accuracy:.1%}, "
                f"temperature {report.temperature:.2f}",
                file=sys.stderr,
            )
        print(f'wrote {args.out} (model_version {model.version}); use it with triage_model = "{args.out}"')
        return 0
    if args.action == "evaluate":
        from ticketstream.engines import triage_engine
        from ticketstream.triage.evaluation import evaluate, format_text, read_labelled

        if not args.file:
            raise SettingsError("triage evaluate needs a labelled JSON-lines FILE")
        try:
            rows = read_labelled(args.file)
        except OSError as exc:
            raise SettingsError(f"{args.file}: cannot read ({exc.strerror})") from None
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        report = evaluate(rows, triage_engine(_settings(args)))
        if args.format == "json":
            print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
        else:
            print(format_text(report, errors=args.errors))
        return 0
    from ticketstream.workers.corrections import export_corrections

    return export_corrections(
        _connected(_settings(args)),
        since=time_option("--since", args.since),
        until=time_option("--until", args.until),
        out=args.out,
    )


def time_option(name: str, value: str | None, naive_tz: tzinfo | None = None) -> datetime | None:
    """An ISO 8601 time option; a time without a UTC offset is refused, or read in `naive_tz`
    where a local reading is what users mean (the archive's report periods)."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise SettingsError(f"{name} {value!r} is not an ISO 8601 date or time") from None
    if when.tzinfo is None:
        if naive_tz is None:
            raise SettingsError(f"{name} needs an explicit UTC offset, e.g. 2026-12-01T00:00:00+08:00")
        when = when.replace(tzinfo=naive_tz)
    return when


def cmd_replay(args: argparse.Namespace) -> int:
    from ticketstream.engines import ticket_process
    from ticketstream.sla.engine import SLA_EVENT
    from ticketstream.tickets.replay import Replay, replay_lines

    until = time_option("--until", args.until)
    settings = _settings(args)
    overrides = {k: v for k, v in (("sla_policy", args.policy), ("calendar", args.calendar)) if v}
    if overrides:
        settings = settings.model_copy(update={k: Path(v) for k, v in overrides.items()})
    replay = Replay(ticket_process(settings))
    with _input(args.file) as source:
        count = 0
        for event in replay_lines(source, replay, until):
            sys.stdout.write(SLA_EVENT.dump_json(event).decode() + "\n")
            count += 1
    for number, reason in replay.rejected:
        print(f"line {number}: skipped: {reason}", file=sys.stderr)
    if args.states:
        try:
            with open(args.states, "w", encoding="utf-8") as out:
                for view in replay.views.values():
                    out.write(json.dumps(view, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise SettingsError(f"--states {args.states}: cannot write ({exc.strerror})") from None
    print(
        f"replayed {len(replay.seen)} event(s) of {len(replay.tickets)} ticket(s): {count} SLA event(s); "
        f"{len(replay.rejected)} line(s) skipped",
        file=sys.stderr,
    )
    return 0


@contextmanager
def _input(name: str) -> Iterator[TextIO]:
    """An input file by name, or standard input for '-'; a missing file is a clear error."""
    if name == "-":
        yield sys.stdin
        return
    try:
        source = open(name, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise SettingsError(f"{name}: cannot read ({exc.strerror})") from None
    with source:
        yield source


def cmd_calendar(args: argparse.Namespace) -> int:
    """`calendar check`: how far the working calendar reaches, and how to extend it."""
    from datetime import date

    from ticketstream.sla.calendar import HORIZON_WARNING_DAYS, WorkCalendar, load_overrides, package_years

    settings = _settings(args)
    path = args.calendar or settings.calendar
    calendar = WorkCalendar(load_overrides(path))
    today = date.today()
    until = calendar.covered_until(today)
    left = (until - today).days
    known = sorted(package_years())
    print(f"chinese-calendar package: {known[0]}-{known[-1]}")
    print(
        f"override file: {path or 'shipped calendar.toml'}: "
        f"{', '.join(map(str, sorted(calendar.overrides.years))) or 'no years'}"
    )
    print(f"covered until: {until.isoformat()} ({left} day(s) from today, {today.isoformat()})")
    if left >= HORIZON_WARNING_DAYS:
        return 0
    year = max(today.year, until.year + 1)
    print(
        f"""
Working-day SLA clocks after {until.isoformat()} fall back to Monday-Friday. When the State Council
publishes the {year} holiday schedule (国务院办公厅关于{year}年部分节假日安排的通知), add it to the
calendar file (the `calendar` setting), or upgrade the chinese-calendar package:

[years.{year}]
holidays = [{year}-01-01, ...]   # every public holiday
workdays = [...]                # weekend days that are working days (调休)
""",
        file=sys.stderr,
    )
    return 1


def cmd_incidents(args: argparse.Namespace) -> int:
    from datetime import datetime

    from kafka import KafkaConsumer, TopicPartition

    from ticketstream.topology import INCIDENTS

    settings = _connected(_settings(args))
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        enable_auto_commit=False,
        consumer_timeout_ms=1500,
        **settings.kafka_client_options(),
        **settings.kafka_connect_options(),
    )
    topic = settings.topic(INCIDENTS)
    parts = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or [])]
    if not parts:
        raise SettingsError(f"topic {topic} does not exist: run `ticketstream topics create`")
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    latest: dict[str, dict[str, Any]] = {}
    for record in consumer:
        body = json.loads(record.value)
        latest[body["id"]] = body
    consumer.close()

    def when(epoch: float | None) -> str:
        return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds") if epoch else "-"

    rows = sorted(latest.values(), key=lambda r: r["opened_at"], reverse=True)
    open_rows = [r for r in rows if r["action"] != "close"]
    print(f"open incidents: {len(open_rows)}")
    for r in open_rows:
        print(
            f"  {r['id']}  {r['city']} {r['category']}  {r['count']} complaints since {when(r['first_at'])}, "
            f"latest {when(r['latest_at'])}"
        )
    closed = [r for r in rows if r["action"] == "close"][: args.recent]
    print(f"recently closed: {len(closed)}")
    for r in closed:
        print(f"  {r['id']}  {r['city']} {r['category']}  {r['count']} complaints, closed {when(r['closed_at'])}")
    return 0


def cmd_alert_bridge(args: argparse.Namespace) -> int:
    from ticketstream.workers.alert_bridge import run_bridge

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = _connected(_settings(args))
    _serve_metrics(settings, args.metrics_port)
    print(
        f"alert-bridge: {settings.topic('alerts')} -> {args.alertmanager} (re-send every {args.resend_seconds:g} s)",
        file=sys.stderr,
    )
    run_bridge(settings, args.alertmanager, args.resend_seconds)
    return 0


def cmd_monitoring(args: argparse.Namespace) -> int:
    from ticketstream.workers import monitoring

    settings = _settings(args)
    directory = Path(args.dir).resolve() if args.dir else monitoring.default_directory(settings)
    if args.action == "start":
        monitoring.start(
            settings,
            directory,
            prometheus_port=args.prometheus_port,
            alertmanager_port=args.alertmanager_port,
            bridge_port=args.bridge_port,
            alertmanager_config=Path(args.alertmanager_config) if args.alertmanager_config else None,
            resend_seconds=args.resend_seconds,
        )
        return 0
    if args.action == "stop":
        return 0 if monitoring.stop(directory) else 1
    return 0 if monitoring.status(directory) else 1


def cmd_schema(args: argparse.Namespace) -> int:
    from ticketstream.schemas.export import export_feed_schemas, export_schemas

    try:
        paths = export_schemas(Path(args.directory)) + export_feed_schemas(Path(args.directory) / "topics")
    except OSError as exc:
        raise SettingsError(
            f"{args.directory}: cannot write the schemas there ({exc.strerror or exc}); "
            "give a DIR that can be created and written"
        ) from None
    for path in paths:
        print(path)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ticketstream.workers.demo import run_demo

    until_interrupted = 10 * 365 * 86_400.0
    return run_demo(_settings(args), duration=args.duration if args.duration > 0 else until_interrupted, rate=args.rate)


def _version() -> str:
    """The installed distribution's version (what pip and bug reports see), or the source tree's
    when run from a checkout that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ticketstream")
    except PackageNotFoundError:
        from ticketstream import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ticketstream", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"ticketstream {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        _common(p)
        return p

    p = add(
        "demo", "run the whole pipeline on an embedded Kafka with simulated traffic, showing live progress", cmd_demo
    )
    p.add_argument(
        "--duration", type=float, default=60.0, help="seconds of simulated traffic (default 60; 0 runs until Ctrl-C)"
    )
    p.add_argument("--rate", type=float, default=20.0, help="complaints per second (default 20)")

    p = add(
        "kafka", "start, stop or inspect the embedded Apache Kafka broker (KRaft) used by the demo and tests", cmd_kafka
    )
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument(
        "--nodes",
        type=int,
        choices=[1, 3],
        help="a new cluster: 1 broker, or 3 for replication (default 1; an existing cluster keeps its size)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="start: stop and DELETE the existing cluster and all its data, then format a new one",
    )
    p.add_argument("--dir", help="state and log directory (default .ticketstream/kafka)")
    p.add_argument(
        "--sasl-ssl",
        action="store_true",
        help="a new cluster: clients must use SASL_SSL with SCRAM-SHA-512 (user and password from sasl_username/"
        "sasl_password, else 'ticketstream' and a random one); writes the client settings to DIR/client.env",
    )
    p.add_argument(
        "--ca-dir",
        metavar="DIR",
        help="with --sasl-ssl: where the test CA and server certificate are made, or reused (default DIR/tls)",
    )

    p = add(
        "topics",
        "create every system topic (idempotent) or describe them; copy-history: when upgrading from a release "
        "before 2026-12-02, copy its customer history into customers.history (after the old workers stopped, "
        "before the new ones start; safe to repeat)",
        cmd_topics,
    )
    p.add_argument("action", choices=["create", "describe", "copy-history"])
    p.add_argument("--json", action="store_true", help="describe as JSON")

    p = add("lag", "committed offset, end offset and lag of consumer groups, per partition", cmd_lag)
    p.add_argument(
        "--group",
        action="append",
        metavar="GROUP",
        help="only this consumer group (repeatable; default: every group; a worker's group is its app id)",
    )
    p.add_argument("--max", type=int, metavar="N", help="exit 1 when any partition lags more than N messages")

    p = add("worker", "run a stream-processing worker (start more with the same settings to scale out)", cmd_worker)
    p.add_argument("--no-create-topics", action="store_true", help="do not create missing topics at start")

    p = add(
        "publish", "validate JSON-lines events and publish them to tickets.inbound (for channel systems)", cmd_publish
    )
    p.add_argument("file", metavar="FILE|-", help="JSON lines, one event per line; - reads standard input")
    p.add_argument("--rate", type=float, help="at most this many events per second (default: as fast as possible)")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve this client's /metrics (messages sent, failures, rejected lines) on this port (default 0: none)",
    )

    p = add("simulate", "publish realistic simulated complaints and their lifecycle events", cmd_simulate)
    p.add_argument("--rate", type=float, default=10.0, help="new complaints per second (default 10)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of new complaints (default 60)")
    p.add_argument("--seed", type=int, default=1, help="random seed: the same seed gives the same traffic")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=6068,
        help="port of the simulator's own /metrics (messages sent by kind, failures); 0: none (default 6068)",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=0.002,
        help="how fast ticket life passes: 1.0 real time, 0.002 (default) one hour in 7.2 s",
    )
    p.add_argument(
        "--drain", type=float, default=30.0, help="seconds to keep sending lifecycle events after --duration"
    )
    p.add_argument("--fast", action="store_true", help="send everything at once, ignoring the schedule")
    p.add_argument("--malformed", type=float, default=0.01, help="share of extra malformed messages (default 0.01)")
    p.add_argument("--duplicates", type=float, default=0.01, help="share of re-sent duplicates (default 0.01)")
    p.add_argument("--incident", metavar="CITY", help="inject a mass-incident burst of network complaints in CITY")

    p = add(
        "classify",
        "classify, grade and route complaints offline with the workers' exact code (test rule changes)",
        cmd_classify,
    )
    p.add_argument(
        "file",
        metavar="FILE|-",
        nargs="?",
        default="-",
        help="JSON lines: complaint.received events, or objects with 'content' (default: stdin)",
    )
    p.add_argument("--full", action="store_true", help="write the whole triage record per line")
    p.add_argument("--classifier-rules", metavar="FILE", help="classifier rule file (TOML) instead of the shipped one")
    p.add_argument("--grading-rules", metavar="FILE", help="grading rule file (TOML)")
    p.add_argument("--routing-rules", metavar="FILE", help="routing table file (TOML)")

    p = add(
        "triage",
        "the learned triage model: export people's corrections, retrain, evaluate on labelled data",
        cmd_triage,
    )
    p.description = (
        "corrections: ticket.reclassified / ticket.regraded events from tickets.accepted, paired with their "
        "complaint, as labelled JSON lines (content, corrected category/grade, who, when).\n"
        "train: fit the category and content-grade model on labelled JSON lines (needs scikit-learn: "
        "pip install 'ticketstream[train]'); workers load it with the triage_model setting.\n"
        "evaluate: accuracy, per-category precision and recall and confusion matrices of the workers' "
        "triage (the model named by --model or triage_model) on a labelled JSON-lines file."
    )
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("action", choices=["corrections", "train", "evaluate"])
    p.add_argument("file", metavar="FILE", nargs="?", help="evaluate: labelled JSON lines (content, category, grade)")
    p.add_argument("--since", metavar="TIME", help="corrections: made at or after this ISO 8601 time")
    p.add_argument("--until", metavar="TIME", help="corrections: made before this ISO 8601 time")
    p.add_argument("--out", metavar="FILE", help="corrections: write here instead of stdout; train: the model file")
    p.add_argument(
        "--examples",
        metavar="FILE",
        nargs="+",
        help="train: labelled JSON lines (default: the shipped examples); add your corrections",
    )
    p.add_argument("--min-df", type=int, default=2, help="train: n-grams in fewer examples are ignored (default 2)")
    p.add_argument("--c-category", type=float, help="train: inverse regularisation of the category head")
    p.add_argument("--c-grade", type=float, help="train: inverse regularisation of the content-grade head")
    p.add_argument("--model", metavar="FILE", help="evaluate: this model file instead of triage_model")
    p.add_argument("--format", choices=["text", "json"], default="text", help="evaluate: output format")
    p.add_argument("--errors", action="store_true", help="evaluate: list every wrong line")

    p = add(
        "replay",
        "run the workers' ticket process offline over recorded events on a virtual clock "
        "(what would a policy have done?)",
        cmd_replay,
    )
    p.add_argument(
        "file",
        metavar="FILE|-",
        nargs="?",
        default="-",
        help="JSON lines of inbound events and incident links {ticket_id, incident_id} (default: stdin)",
    )
    p.add_argument("--policy", metavar="FILE", help="SLA policy (TOML) instead of the settings' sla_policy")
    p.add_argument(
        "--calendar", metavar="FILE", help="working-calendar overrides (TOML) instead of the settings' calendar"
    )
    p.add_argument(
        "--until",
        metavar="TIME",
        help="advance the clock to this ISO 8601 time at the end (default: the last event time)",
    )
    p.add_argument("--states", metavar="FILE", help="also write each ticket's final tickets.state record here")

    p = add(
        "alert-bridge",
        "forward the alerts topic to Alertmanager's API, with de-duplication and re-sends",
        cmd_alert_bridge,
    )
    p.add_argument("--alertmanager", default="http://127.0.0.1:9093", help="Alertmanager base URL")
    p.add_argument(
        "--resend-seconds",
        type=float,
        default=60.0,
        help="re-send firing alerts this often; keep it well below Alertmanager's resolve_timeout",
    )
    p.add_argument("--metrics-port", type=int, default=6067, help="port of the bridge's own /metrics (0: none)")

    p = add("calendar", "check how far the working calendar (statutory holidays, 调休) reaches", cmd_calendar)
    p.add_argument("action", choices=["check"])
    p.add_argument("--calendar", metavar="FILE", help="calendar override file instead of the settings' calendar")
    p.epilog = "exit status 1 when fewer than 45 days are covered from today"

    p = add(
        "monitoring",
        "start, stop or inspect Prometheus, Alertmanager and the alert bridge (loopback, absolute paths)",
        cmd_monitoring,
    )
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--dir", help="state, data and logs (default: .ticketstream/monitoring, made absolute)")
    p.add_argument("--prometheus-port", type=int, default=9090, help="default 9090 (a free one if busy)")
    p.add_argument("--alertmanager-port", type=int, default=9093, help="default 9093 (a free one if busy)")
    p.add_argument("--bridge-port", type=int, default=6067, help="the bridge's /metrics (default 6067)")
    p.add_argument("--alertmanager-config", metavar="FILE", help="instead of monitoring/alertmanager.yml")
    p.add_argument("--resend-seconds", type=float, default=60.0, help="the bridge's re-send period (default 60)")

    p = add("incidents", "list open and recently closed mass incidents", cmd_incidents)
    p.add_argument("action", choices=["list"])
    p.add_argument("--recent", type=int, default=10, help="how many closed incidents to show (default 10)")

    from ticketstream.workers.archive_cli import register as register_archive

    register_archive(sub, add, _settings, _connected)

    p = add(
        "schema",
        "export the JSON Schema of every event type for channel systems, and of the records on "
        "tickets.state, tickets.accepted, sla.events and incidents for archive consumers",
        cmd_schema,
    )
    p.add_argument("action", choices=["export"])
    p.add_argument("directory", metavar="DIR")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # kafka-python logs every refused connection at ERROR; with no handler configured Python
    # prints those to stderr. The command says it once, clearly (the worker configures its own log).
    logging.getLogger("kafka").addHandler(logging.NullHandler())
    try:
        return int(args.func(args) or 0)
    except (SettingsError, PolicyError, CalendarError) as exc:
        print(f"ticketstream: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a clear one-line error instead of a traceback
        from ticketstream.workers.connect import BrokerUnreachable, KafkaRefused, is_unreachable, protocol_hint
        from ticketstream.workers.embedded_kafka import KafkaLauncherError

        if isinstance(exc, KafkaLauncherError):
            print(f"ticketstream: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, KafkaRefused):
            print(f"ticketstream: {exc}", file=sys.stderr)
            return 1
        if isinstance(exc, BrokerUnreachable) or is_unreachable(exc):
            unreachable = (
                exc if isinstance(exc, BrokerUnreachable) else BrokerUnreachable(_BOOTSTRAP[0], type(exc).__name__)
            )
            print(f"ticketstream: {unreachable}{protocol_hint(_BOOTSTRAP[0], _PROTOCOL[0])}", file=sys.stderr)
            return 1
        if isinstance(exc, OSError) and exc.filename:
            print(f"ticketstream: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
