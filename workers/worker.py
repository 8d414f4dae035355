"""`ticketstream worker`: one stream-processing worker (a member of the Faust consumer group)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import faust

from ticketstream.settings import Settings, SettingsError
from ticketstream.workers import gctuning
from ticketstream.workers.app import check_exposure, create_app
from ticketstream.workers.topics import create_topics, with_replication

log = logging.getLogger(__name__)


class Worker(faust.Worker):
    """Faust's worker with a deadline on stopping. A clean stop commits offsets and leaves the
    group; when the brokers are already gone that stop waits on metadata forever, so after
    `stop_timeout` seconds the process exits anyway (nothing is lost: uncommitted messages are
    processed again by whoever takes the partitions, and every effect is idempotent)."""

    def __init__(self, app: faust.App, stop_timeout: float, **kwargs: object) -> None:
        super().__init__(app, **kwargs)  # type: ignore[arg-type]
        self.stop_timeout = stop_timeout

    def _schedule_shutdown(self, signal: signal.Signals) -> None:  # noqa: A002 - mode's name
        if not self._signal_stop_time:
            threading.Thread(target=self._exit_after_deadline, name="stop-deadline", daemon=True).start()
        super()._schedule_shutdown(signal)

    def _exit_after_deadline(self) -> None:
        time.sleep(self.stop_timeout)
        log.error(
            "worker still stopping after %.0f s (brokers unreachable?): exiting without a clean group leave",
            self.stop_timeout,
        )
        logging.shutdown()
        os._exit(1)


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM (a worker commits and leaves its group cleanly), SIGKILL if it hangs."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_worker(settings: Settings, ensure_topics: bool = True, quiet: bool = True) -> None:
    """Create missing topics (idempotent), read every customer's history (the triage's repeat
    detection needs it complete), then run the worker until SIGINT/SIGTERM."""
    check_exposure(settings)  # before touching Kafka: an unguarded exposed lookup is a setup error
    if not port_free(settings.web_host, settings.web_port):
        raise SettingsError(
            f"setting 'web_port': {settings.web_host}:{settings.web_port} is already in use (another worker on "
            "this machine?); give each worker its own port with TICKETSTREAM_WEB_PORT or --web-port"
        )
    from ticketstream.workers.connect import wait_for_broker

    wait_for_broker(settings, say=lambda m: print(f"ticketstream worker: {m}", file=sys.stderr, flush=True))
    if ensure_topics:
        create_topics(settings)
    app = create_app(with_replication(settings))  # Faust declares its own topics with this factor
    # Every customer's history, read before the worker joins its group: nothing waits for it then.
    app.loop.run_until_complete(
        app.customer_history.load(say=lambda m: print(f"ticketstream worker: {m}", file=sys.stderr, flush=True))
    )
    worker = Worker(
        app,
        stop_timeout=settings.stop_timeout_seconds,
        loglevel=settings.log_level,
        quiet=quiet,
        redirect_stdouts=False,
    )
    gctuning.tune()  # after start-up built the app: what lives as long as the process is frozen
    worker.execute_from_commandline()
