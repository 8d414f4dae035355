"""`ticketstream worker`: one stream-processing worker (a member of the Faust consumer group)."""

from __future__ import annotations

import faust

from ticketstream.settings import Settings
from workers.app import create_app
from workers.topics import create_topics


def run_worker(settings: Settings, ensure_topics: bool = True, quiet: bool = True) -> None:
    """Create missing topics (idempotent), then run the worker until SIGINT/SIGTERM."""
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
