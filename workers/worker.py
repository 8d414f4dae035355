"""`ticketstream worker`: one stream-processing worker (a member of the Faust consumer group)."""

from __future__ import annotations

import signal
import socket
import subprocess

import faust

from ticketstream.settings import Settings, SettingsError
from workers.app import create_app
from workers.topics import create_topics


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
    """Create missing topics (idempotent), then run the worker until SIGINT/SIGTERM."""
    if not port_free(settings.web_host, settings.web_port):
        raise SettingsError(
            f"setting 'web_port': {settings.web_host}:{settings.web_port} is already in use (another worker on "
            "this machine?); give each worker its own port with TICKETSTREAM_WEB_PORT or --web-port"
        )
    if ensure_topics:
        create_topics(settings)
    app = create_app(settings)
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        quiet=quiet,
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()
