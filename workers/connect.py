"""Reaching Kafka, and saying clearly when it cannot be reached.

Every command ends an unreachable broker with one line that names the address and the setting to
change, instead of a client library's traceback (exit status 1: a runtime failure, not a usage
error). A worker first waits a bounded time (`broker_wait_seconds`), since brokers and workers
are often started together by one script.
"""

from __future__ import annotations

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


def is_unreachable(exc: BaseException) -> bool:
    """Whether a kafka-python error means "no broker answered" (rather than a broker said no)."""
    from kafka import errors

    # kafka-python 2.x raised NoBrokersAvailable; 3.x a KafkaTimeoutError "Unable to bootstrap".
    gone = tuple(c for c in (getattr(errors, "NoBrokersAvailable", None), errors.KafkaConnectionError) if c)
    if isinstance(exc, gone):
        return True
    return isinstance(exc, errors.KafkaTimeoutError) and "bootstrap" in str(exc).lower()


def probe(settings: Settings) -> None:
    """Raise `BrokerUnreachable` unless a bootstrap server answers within the connect timeout."""
    from kafka import KafkaAdminClient

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
