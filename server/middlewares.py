"""The one error middleware, with request ids, the access log and request metrics.

* A :class:`ProtocolError` (the protocol's or the server's own) becomes
  ``application/problem+json`` with its stable ``code`` and ``status``.
* aiohttp's HTTP errors are mapped to codes too (404 ``not_found``, 405
  ``method_not_allowed``, 413 ``too_large`` ...).
* A full disk wherever it strikes (a blob, a token, an invitation) is ``507
  insufficient_storage``, another I/O failure of the disk or the database ``503
  unavailable``: the write failed whole, so nothing was stored.
* Anything else is a bug: it is logged with its traceback under the request id and
  answered with a bare 500 ``internal`` that leaks nothing.

Every request gets an ``X-Request-Id``, also in every problem body as ``request_id`` (an
RFC 9457 extension member) so a user can quote it, and one access-log line with route,
status, error code, duration and the caller's device id: never headers, tokens, bodies
or query strings.  While the request is served its id is in
:data:`server.logging_json.REQUEST_ID`, so every line logged for it carries the id.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import random
import re
import sqlite3
import time
from http import HTTPStatus

from aiohttp import web
from aiohttp.typedefs import Handler

from protocol.encoding import b64e, canonical
from protocol.errors import ProtocolError
from server.appkeys import CALLER, METRICS, REQUEST_ID
from server.errors import RateLimitedError
from server.logging_json import REQUEST_ID as REQUEST_ID_VAR
from server.storage.db import is_disk_full

log = logging.getLogger("docket.server")
access_log = logging.getLogger("docket.access")

PROBLEM_TYPE = "application/problem+json"
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Request ids only correlate log lines: a PRNG seeded once from the OS is enough, and
# spares every request a getrandom() system call (which also gives up the GIL).
_REQUEST_IDS = random.Random(os.urandom(32))

HTTP_CODES = {
    400: "malformed",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    413: "too_large",
    414: "too_large",
    415: "malformed",
    429: "rate_limited",
    431: "too_large",
    503: "unavailable",
}


def problem(
    status: int, code: str, detail: str | None = None, *, request_id: str | None = None
) -> web.Response:
    """An ``application/problem+json`` response (canonical JSON, like every body)."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, object] = {
        "code": code,
        "status": status,
        "title": title,
        "type": f"urn:docket:error:{code}",
    }
    if detail:
        body["detail"] = detail
    if request_id is not None:
        body["request_id"] = request_id
    return web.Response(status=status, body=canonical(body), content_type=PROBLEM_TYPE)


def _storage_failure(exc: BaseException) -> bool:
    """An I/O failure of the disk or the database (a transaction that was rolled back, a
    temporary file that was removed): the operator must look, the client may retry."""
    if isinstance(exc, sqlite3.OperationalError):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.EIO, errno.EFBIG, errno.EROFS)


def _route(request: web.Request) -> str:
    info = request.match_info
    resource = info.route.resource if info.http_exception is None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map errors to problem+json; log and count every request."""
    incoming = request.headers.get("X-Request-Id", "")
    if _REQUEST_ID_RE.fullmatch(incoming):
        request_id = incoming
    else:
        request_id = f"{_REQUEST_IDS.getrandbits(64):016x}"
    request[REQUEST_ID] = request_id
    context = REQUEST_ID_VAR.set(request_id)
    try:
        return await _answer(request, handler, request_id)
    finally:
        REQUEST_ID_VAR.reset(context)


async def _answer(request: web.Request, handler: Handler, request_id: str) -> web.StreamResponse:
    started = time.perf_counter()
    response: web.StreamResponse
    code: str | None = None
    try:
        response = await handler(request)
    except ProtocolError as exc:
        code = exc.code
        response = problem(exc.status, code, exc.detail, request_id=request_id)
        if isinstance(exc, RateLimitedError):
            response.headers["Retry-After"] = str(exc.retry_after)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = HTTP_CODES.get(exc.status, "internal" if exc.status >= 500 else "malformed")
        response = problem(exc.status, code, exc.reason, request_id=request_id)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            # Not a bug: whatever failed (a blob, a token, an invitation) wrote nothing.
            code = "insufficient_storage"
            log.error("disk full in request %s: %s", request_id, exc, extra={"code": code})
            response = problem(
                507, code, "the disk is full; nothing was written", request_id=request_id
            )
        elif _storage_failure(exc):
            code = "unavailable"
            log.exception("storage failure in request %s", request_id, extra={"code": code})
            response = problem(
                503, code, "a storage error; nothing was written", request_id=request_id
            )
        else:
            code = "internal"
            log.exception("unexpected error in request %s", request_id, extra={"code": code})
            response = problem(500, code, request_id=request_id)
    if not response.prepared:
        response.headers["X-Request-Id"] = request_id
    elapsed = time.perf_counter() - started
    route = _route(request)
    status = response.status
    request.app[METRICS].observe_request(route, request.method, status, elapsed)
    if access_log.isEnabledFor(logging.INFO):
        caller = request.get(CALLER)
        fields: dict[str, object] = {
            "ip": request.remote,
            "method": request.method,
            "ms": round(elapsed * 1000, 2),
            "route": route,
            "status": status,
        }
        if caller is not None:
            fields["device"] = b64e(caller.device)
        access_log.info(
            "%s %s %d", request.method, route, status, extra={"code": code, "fields": fields}
        )
    return response
