"""The ``Origin`` check for WebSocket upgrades (cross-site WebSocket hijacking).

A browser attaches ``Origin`` to every WebSocket handshake, and a page on any site can
open one to this server.  Bearer tokens are not cookies, so a foreign page cannot ride
on a user's session today; refusing foreign origins keeps it that way if a browser
client ever keeps a token where pages can reach it.  Non-browser clients (the CLI, the
client library) send no ``Origin`` and are unaffected.

Allowed: no ``Origin`` at all; the server's own origin (scheme, host and port of the
request); or one listed in the ``ws_origins`` setting (comma-separated, exact
``scheme://host[:port]``).  Anything else, including ``null``, is ``403 bad_origin``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from server.errors import BadOriginError

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalise(origin: str) -> str | None:
    """``scheme://host:port`` in lower case with an explicit port, or ``None``."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    return f"{scheme}://{parts.hostname.lower()}:{port or _DEFAULT_PORTS[scheme]}"


def parse_allowed(setting: str) -> frozenset[str]:
    """The ``ws_origins`` setting as normalised origins (malformed entries are dropped
    by :func:`normalise` never matching; the settings check refuses them at start-up)."""
    out = set()
    for item in setting.split(","):
        if item.strip():
            origin = normalise(item)
            if origin is not None:
                out.add(origin)
    return frozenset(out)


def check_origin(request: web.Request, allowed: frozenset[str]) -> None:
    """Refuse a WebSocket handshake from a foreign browser origin (``403 bad_origin``)."""
    values = request.headers.getall("Origin", [])
    if not values:
        return
    if len(values) > 1:
        raise BadOriginError("more than one Origin header")
    origin = normalise(values[0])
    if origin is None:
        raise BadOriginError("an opaque or malformed Origin")
    own = normalise(f"{request.scheme}://{request.host}")
    if origin == own or origin in allowed:
        return
    raise BadOriginError("WebSocket upgrades from this Origin are not allowed")
