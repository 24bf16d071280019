"""Helpers every handler uses: bodies with limits and timeouts, queries, auth, JSON."""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from protocol.encoding import JSONValue, canonical, parse
from protocol.errors import MalformedError, TooLargeError
from server.appkeys import AUTH, CALLER, DEVICE_LIMITER, IP_LIMITER, SETTINGS, STATE
from server.errors import BadQueryError, RequestTimeoutError
from server.services.auth import Caller

JSON_TYPE = "application/json"
_INT_RE = re.compile(r"-?(?:0|[1-9][0-9]{0,15})")
READ_CHUNK = 64 * 1024


def json_response(value: JSONValue, status: int = 200) -> web.Response:
    """A canonical JSON answer."""
    return web.Response(status=status, body=canonical(value), content_type=JSON_TYPE)


def raw_json(body: bytes) -> web.Response:
    """An answer already assembled as canonical JSON bytes (entries embedded verbatim)."""
    return web.Response(body=body, content_type=JSON_TYPE)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes or a body that trickles in."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLargeError(f"request body larger than {limit} bytes")
    timeout = request.app[SETTINGS].body_timeout
    data = bytearray()
    try:
        async with asyncio.timeout(timeout):
            while chunk := await request.content.read(READ_CHUNK):
                data += chunk
                if len(data) > limit:
                    raise TooLargeError(f"request body larger than {limit} bytes")
    except TimeoutError:
        raise RequestTimeoutError("the request body arrived too slowly") from None
    return bytes(data)


async def read_json(request: web.Request) -> JSONValue:
    """A canonical JSON body (``400 non_canonical`` for anything else)."""
    limit = request.app[SETTINGS].max_body
    body = await read_body(request, limit)
    if not body:
        raise MalformedError("expected a JSON body")
    return parse(body, max_size=limit)


def query_int(
    request: web.Request,
    name: str,
    *,
    default: int | None = None,
    lo: int = 0,
    hi: int = 2**53 - 1,
) -> int:
    """An integer query parameter in ``[lo, hi]`` (``400 bad_query`` otherwise)."""
    values = request.query.getall(name, [])
    if not values:
        if default is None:
            raise BadQueryError(f"missing query parameter {name!r}")
        return default
    if len(values) > 1 or not _INT_RE.fullmatch(values[0]):
        raise BadQueryError(f"query parameter {name!r} must be one integer")
    value = int(values[0])
    if not lo <= value <= hi:
        raise BadQueryError(f"query parameter {name!r} must be between {lo} and {hi}")
    return value


def path_int(request: web.Request, name: str) -> int:
    """An integer path segment (the route pattern already allows only digits)."""
    text = request.match_info[name]
    if not _INT_RE.fullmatch(text):
        raise web.HTTPNotFound()
    return int(text)


def authenticate(request: web.Request) -> tuple[Caller, int]:
    """The calling device (bearer token), rate-limited per device; and token expiry."""
    caller, expires = request.app[AUTH].authenticate(request.headers.get("Authorization"))
    request[CALLER] = caller
    request.app[DEVICE_LIMITER].take(caller.device)
    return caller, expires


def caller_of(request: web.Request) -> Caller:
    """:func:`authenticate` without the expiry."""
    return authenticate(request)[0]


def limit_ip(request: web.Request) -> None:
    """Rate-limit an unauthenticated route by client address."""
    request.app[IP_LIMITER].take(request.remote or "?")


def require_founded(request: web.Request) -> None:
    """``404 not_founded`` before founding, whatever the request looks like."""
    request.app[STATE].require_ledger()
