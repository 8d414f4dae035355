"""Who may read a ticket over HTTP: a bearer-token check with no web framework in it.

The ticket lookup returns a customer's name and phone. A worker reachable beyond loopback (in a
cluster, so Prometheus can scrape it) therefore guards the lookup with a shared secret, while
/metrics and /health stay open: they carry no personal data and their callers hold no secret.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class Denied:
    """Why a request is refused: 401 when it proves nothing, 403 when it proves the wrong thing."""

    status: int
    error: str


MISSING = Denied(401, "this lookup needs 'Authorization: Bearer <lookup_token>'")
WRONG = Denied(403, "the bearer token is not this cluster's lookup_token")


def check_bearer(authorization: str | None, token: str) -> Denied | None:
    """None when `authorization` carries `token` as a bearer credential, else why not.

    The comparison takes the same time whatever the prefix matched (hmac.compare_digest), so the
    token cannot be guessed byte by byte from response times."""
    if not authorization:
        return MISSING
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return MISSING
    if not hmac.compare_digest(credential.strip().encode(), token.encode()):
        return WRONG
    return None
