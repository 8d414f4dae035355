"""Reaching Kafka, and saying clearly when it cannot be reached or refuses us.

Every command ends an unreachable broker with one line that names the address and the setting to
change, instead of a client library's traceback (exit status 1: a runtime failure, not a usage
error). A worker first waits a bounded time (`broker_wait_seconds`), since brokers and workers
are often started together by one script. A broker that answers but refuses the credentials or
the TLS handshake is not waited for: the same line-and-exit-1, at once, instead of a client
retrying the login until its timeout and then calling the broker unreachable.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable

from ticketstream.settings import Settings


class BrokerUnreachable(RuntimeError):
    """No bootstrap server answered within the connect timeout."""

    def __init__(self, bootstrap: str | None, detail: str = "", waited: float | None = None) -> None:
        self.bootstrap = bootstrap
        waited_text = f" after waiting {waited:.0f} s (setting broker_wait_seconds)" if waited else ""
        super().__init__(
            f"cannot reach Kafka at {bootstrap or '(no address)'}{waited_text}{f' ({detail})' if detail else ''}: "
            "check that it runs, or point at it with TICKETSTREAM_BOOTSTRAP_SERVERS / --bootstrap-servers "
            "(an embedded one: `ticketstream kafka start`)"
        )


class KafkaRefused(RuntimeError):
    """A broker answered but refused this client: SASL login or TLS handshake failed."""


def check_security(settings: Settings) -> None:
    """With SASL or TLS configured, log in to the first bootstrap server that answers and raise
    `KafkaRefused` if it refuses; return quietly otherwise (unreachable ones are the caller's).

    kafka-python retries a refused login until its bootstrap timeout and then reports "unable to
    bootstrap", which reads like a network problem; aiokafka's single connection says what the
    broker said, so this asks it once (well under a second)."""
    if settings.security_protocol == "PLAINTEXT" or not settings.bootstrap_servers:
        return
    asyncio.run(_check_security(settings))


async def _check_security(settings: Settings) -> None:
    from aiokafka import errors
    from aiokafka.conn import create_conn

    options = settings.kafka_client_options()
    timeout = settings.connect_timeout_seconds
    for server in (settings.bootstrap_servers or "").split(","):
        host, _, port = server.rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host.strip("[]"),
                    int(port),
                    client_id=f"{settings.app_id}-login-check",
                    request_timeout_ms=int(timeout * 1000),
                    **options,
                ),
                timeout,
            )
        except (errors.SaslAuthenticationFailed, errors.AuthenticationFailedError, errors.IllegalSaslStateError) as exc:
            raise KafkaRefused(
                f"authentication failed for user {settings.sasl_username!r} at {server} "
                f"({options['sasl_mechanism']}; settings sasl_username/sasl_password): {_said(exc)}"
            ) from None
        except errors.UnsupportedSaslMechanismError as exc:
            raise KafkaRefused(f"{server} refuses the SASL mechanism (setting sasl_mechanism): {_said(exc)}") from None
        except ssl.SSLCertVerificationError as exc:
            raise KafkaRefused(
                f"TLS: the certificate of {server} is not trusted ({exc.verify_message}; settings ssl_cafile, "
                "ssl_check_hostname)"
            ) from None
        except ssl.SSLError as exc:
            raise KafkaRefused(
                f"TLS handshake with {server} failed ({exc.reason or exc}): does it listen with "
                f"{settings.security_protocol}? (setting security_protocol)"
            ) from None
        except (OSError, errors.KafkaError):  # TimeoutError is an OSError
            continue  # not answering: the caller's unreachable path says so
        conn.close()
        return


def protocol_hint(bootstrap: str | None, protocol: str, timeout: float = 2.0) -> str:
    """After "cannot reach": whether a bootstrap server does answer, in TLS, while this client
    speaks plain TCP (a security_protocol that differs from the listener's reads like a broker
    that is down, since the broker just drops the connection). Empty when nothing is learnt."""
    if protocol not in ("PLAINTEXT", "SASL_PLAINTEXT"):
        return ""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only asking whether it speaks TLS at all
    for server in (bootstrap or "").split(","):
        host, _, port = server.rpartition(":")
        try:
            with (
                socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as raw,
                context.wrap_socket(raw, server_hostname=host.strip("[]")),
            ):
                pass
        except (OSError, ValueError):
            continue
        wanted = "SASL_SSL or SSL" if protocol == "PLAINTEXT" else "SASL_SSL"
        return f"; but {server} answers in TLS: set security_protocol to {wanted} (it is {protocol})"
    return ""


def _said(exc: BaseException) -> str:
    """What the broker said, without aiokafka's "[Error 58] SaslAuthenticationFailed: " prefix."""
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith("[Error") and ": " in text else text or type(exc).__name__


def is_unreachable(exc: BaseException) -> bool:
    """Whether a kafka-python error means "no broker answered" (rather than a broker said no)."""
    from kafka import errors

    # kafka-python 2.x raised NoBrokersAvailable; 3.x a KafkaTimeoutError "Unable to bootstrap".
    gone = tuple(c for c in (getattr(errors, "NoBrokersAvailable", None), errors.KafkaConnectionError) if c)
    if isinstance(exc, gone):
        return True
    return isinstance(exc, errors.KafkaTimeoutError) and "bootstrap" in str(exc).lower()


def probe(settings: Settings) -> None:
    """Raise `BrokerUnreachable` unless a bootstrap server answers within the connect timeout,
    `KafkaRefused` if it refuses the credentials or TLS."""
    from kafka import KafkaAdminClient

    check_security(settings)
    try:
        KafkaAdminClient(
            bootstrap_servers=(settings.bootstrap_servers or "").split(","),
            client_id=f"{settings.app_id}-probe",
            **settings.kafka_client_options(),
            **settings.kafka_connect_options(),
        ).close()
    except Exception as exc:  # noqa: BLE001 - only "unreachable" becomes BrokerUnreachable
        if is_unreachable(exc):
            raise BrokerUnreachable(settings.bootstrap_servers, type(exc).__name__) from None
        raise


def wait_for_broker(
    settings: Settings, say: Callable[[str], None], clock: Callable[[], float] = time.monotonic
) -> None:
    """Retry `probe` until it answers or `broker_wait_seconds` have passed (then raise)."""
    started = clock()
    announced = False
    while True:
        try:
            probe(settings)
            if announced:
                say(f"Kafka at {settings.bootstrap_servers} answered after {clock() - started:.0f} s")
            return
        except BrokerUnreachable as exc:
            waited = clock() - started
            if waited >= settings.broker_wait_seconds:
                raise BrokerUnreachable(settings.bootstrap_servers, waited=waited) from exc
            if not announced:
                say(
                    f"waiting for Kafka at {settings.bootstrap_servers} (up to {settings.broker_wait_seconds:.0f} s, "
                    "setting broker_wait_seconds) ..."
                )
                announced = True
            time.sleep(min(1.0, max(0.0, settings.broker_wait_seconds - waited)))
