"""The desk's guards: what stops other local users, other tabs and other sites.

Theory of operation
-------------------
The desk listens on 127.0.0.1, so the network is not the threat; the browser is.  Any
page the user visits can make the browser send requests to ``127.0.0.1:PORT``, and a
DNS name an attacker controls can be rebound to 127.0.0.1 so that those requests look
same-origin to the browser.  Other users of the machine can connect to the port too.
Each guard below fails closed with a plain 4xx page and never touches the client:

1. **Host** must be ``127.0.0.1:PORT`` or ``localhost:PORT`` (the port actually bound):
   a rebound name arrives with the attacker's Host and is refused.
2. **Origin** (and ``Sec-Fetch-Site``): a request that modifies anything must carry the
   desk's own Origin (or ``null``, which browsers send under ``no-referrer``, together
   with ``Sec-Fetch-Site: same-origin``); a request from another site is refused
   whatever its method.
3. **Session**: the launch URL carries a random token; presenting it sets an
   ``HttpOnly; SameSite=Strict`` session cookie and redirects to a token-less URL (so
   the token leaves the address bar and history).  Every other page needs the cookie.
4. **CSRF**: every form carries the session's CSRF token, checked on every POST (the
   live parts send it as a header).
5. **Headers** on every answer: a strict Content-Security-Policy (only the desk's own
   scripts and styles, no inline script, ``frame-ancestors 'none'``), ``nosniff``,
   ``Referrer-Policy: no-referrer``, and ``Cache-Control: no-store`` so no plaintext
   lands in the browser's disk cache.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

COOKIE = "docket_desk"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-Docket-CSRF"
SAFE_METHODS = frozenset({"GET", "HEAD"})
CSRF_KEY: web.RequestKey[str] = web.RequestKey("csrf", str)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

log = logging.getLogger("docket.desk")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Sessions:
    """The launch token and the sessions it opened (in memory only)."""

    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    # session id -> CSRF token of that session
    csrf: dict[str, str] = field(default_factory=dict)

    def open(self) -> str:
        """A new session; its id (the cookie value)."""
        sid = secrets.token_urlsafe(32)
        self.csrf[sid] = secrets.token_urlsafe(32)
        return sid

    def token_ok(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.token.encode())

    def session_of(self, request: web.Request) -> str | None:
        sid = request.cookies.get(COOKIE, "")
        for known in self.csrf:
            if hmac.compare_digest(sid.encode(), known.encode()):
                return known
        return None


def refusal(status: int, code: str, detail: str) -> web.Response:
    """A plain refusal page (no template: it must work before anything else does)."""
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Docket Desk: refused"
        f"</title></head><body><h1>Refused</h1><p>{code}: {detail}</p></body></html>"
    )
    resp = web.Response(status=status, text=body, content_type="text/html")
    resp.headers["X-Docket-Error"] = code
    return resp


def allowed_hosts(request: web.Request) -> set[str]:
    """The Host values the desk answers to: loopback names with the bound port."""
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    port = sock[1] if sock else None
    return {f"127.0.0.1:{port}", f"localhost:{port}"}


def make_guard(sessions: Sessions) -> Middleware:
    """The middleware holding every guard (see the module's theory of operation)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            resp = await _check(request, handler, sessions)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug, not an input: logged here, and the page says only that it failed.
            log.exception("desk: %s %s failed", request.method, request.path)
            resp = refusal(500, "internal", "the desk failed on this page (see its terminal)")
        for name, value in SECURITY_HEADERS.items():
            resp.headers.setdefault(name, value)
        return resp

    return guard


async def _check(request: web.Request, handler: Handler, sessions: Sessions) -> web.StreamResponse:
    host = request.headers.get("Host", "")
    hosts = allowed_hosts(request)
    if host not in hosts:
        return refusal(421, "bad_host", "this desk answers only to its loopback address")
    origin = request.headers.get("Origin")
    site = request.headers.get("Sec-Fetch-Site")
    if origin == "null" and site == "same-origin":
        # Under Referrer-Policy: no-referrer a browser sends "Origin: null" with the
        # desk's own form posts; Sec-Fetch-Site (set by the browser, not by pages) then
        # says where it came from.  A null Origin without it is refused below.
        origin = f"http://{host}"
    if origin is not None and origin not in {f"http://{h}" for h in hosts}:
        return refusal(403, "bad_origin", "a request from another site was refused")
    if site is not None and site not in ("same-origin", "none"):
        return refusal(403, "cross_site", "a request from another site was refused")
    if request.method not in SAFE_METHODS and origin is None:
        return refusal(403, "bad_origin", "a form post without the desk's Origin was refused")
    if request.path == "/launch":
        given = request.query.get("token", "")
        if not given or not sessions.token_ok(given):
            return refusal(403, "bad_token", "open the desk by the URL 'docket desk' printed")
        opened = sessions.open()
        resp = web.Response(status=303, headers={"Location": "/"})
        resp.set_cookie(COOKIE, opened, httponly=True, samesite="Strict", path="/")
        return resp
    sid = sessions.session_of(request)
    if sid is None:
        return refusal(403, "no_session", "open the desk by the URL 'docket desk' printed")
    request[CSRF_KEY] = sessions.csrf[sid]
    if request.method not in SAFE_METHODS:
        header = request.headers.get(CSRF_HEADER)
        if header is None:
            form = await request.post()
            value = form.get(CSRF_FIELD)
            header = value if isinstance(value, str) else ""
        given = header
        if not hmac.compare_digest(given.encode(), sessions.csrf[sid].encode()):
            return refusal(403, "bad_csrf", "the form's CSRF token is missing or wrong")
    try:
        return await handler(request)
    except web.HTTPException as exc:
        # Answer it here so that redirects and 404s get the security headers too.
        return web.Response(status=exc.status, headers=exc.headers, text=exc.text)
