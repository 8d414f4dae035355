"""Guards for the worker's web pages (the decision itself is `ticketstream.webauth`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from ticketstream.settings import Settings
from ticketstream.streams.emit import producer_partitions
from ticketstream.webauth import check_bearer

View = Callable[..., Awaitable[Any]]

METADATA_WAIT_SECONDS = 5.0
"""How long a lookup waits for the table's changelog metadata the first time it is asked for
(one metadata request; then it is known)."""


def bearer_required(settings: Settings) -> Callable[[View], View]:
    """Decorate a Faust page so it answers only requests with the settings' lookup token.

    With no token configured (a loopback-only worker; an exposed one refuses to start without
    one) the page is served as before. Put it above `table_route`: the check then happens on the
    worker first asked, and the forwarded request carries the same header to the key's owner,
    which checks it again."""
    secret = settings.lookup_token

    def decorate(view: View) -> View:
        if secret is None:
            return view
        token = secret.get_secret_value()

        @wraps(view)
        async def guarded(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            denied = check_bearer(request.headers.get("Authorization"), token)
            if denied is not None:
                headers = {"WWW-Authenticate": 'Bearer realm="ticketstream"'} if denied.status == 401 else None
                return self.json({"error": denied.error}, status=denied.status, headers=headers)
            return await view(self, request, *args, **kwargs)

        return guarded

    return decorate


def owner_route(app: Any, table: Any, match_info: str) -> Callable[[View], View]:
    """Like Faust's `table_route`, but finds the key's owner by the key's own bytes.

    Faust's router hashes the key as the table's changelog serialises it (JSON: `"T-1"` with the
    quotes), while every record reaches the tickets table on the partition of the raw key (the
    producer's murmur2 of `T-1`, as every Kafka client sends it). With more than one worker the
    lookup was then forwarded to a worker that did not hold the ticket and answered 404 for most
    keys. This routes by the raw key; the forwarded request keeps the caller's headers (the token).
    Faust finds the partition in the producer's metadata, which holds only the topics the producer
    tracks once it tracks any (`streams.emit`): a worker that never wrote the table has the
    changelog tracked at its first lookup (`producer_partitions`)."""
    from faust.exceptions import SameNode
    from faust.web.exceptions import ServiceUnavailable

    topic = table.changelog_topic.get_topic_name()

    def decorate(view: View) -> View:
        @wraps(view)
        async def routed(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            key = request.match_info[match_info]
            if await producer_partitions(app, topic, METADATA_WAIT_SECONDS) is None:
                raise ServiceUnavailable()  # Faust places the key by that metadata: not known yet
            try:
                owner = app.assignor.key_store(topic, key.encode())
            except KeyError:
                raise ServiceUnavailable() from None  # no assignment yet (rebalancing): 503, as Faust does
            try:
                return await app.router._route_req(owner, self.web, request)
            except SameNode:
                return await view(self, request, *args, **kwargs)

        return routed

    return decorate
