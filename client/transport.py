"""HTTP transport: canonical JSON in and out, problem+json errors, token auth, timeouts.

This is the only module that speaks HTTP.  It knows the wire shapes of docs/API.md but
nothing of their meaning: whatever it returns is still unverified and goes through the
protocol's verifiers in :mod:`client.api`.

* Request bodies are :func:`protocol.encoding.canonical` bytes (the server rejects
  anything else); response bodies are parsed with the strict canonical parser.
* Any error answer becomes a :class:`ServerError` carrying the problem's ``status``,
  ``code`` and ``detail``; connection failures and timeouts become
  :class:`NetworkError`.  ``429`` and ``503`` are retried a few times after the
  ``Retry-After`` the server asks for (bounded), because both mean "try again soon".
* Every connection verifies the server's TLS certificate against the home's CA file or
  the system's trust store (:mod:`client.tls`); a failure is :class:`~client.tls.TlsError`.
* Authentication is challenge-response (docs/API.md "Authentication"): the device signs
  ``CTX_AUTH || canonical({challenge, device, origin, talks})``.  The bearer token is
  kept in memory only and is renewed once, transparently, when a request answers 401.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from client.errors import NetworkError, ServerError
from client.tls import TlsError, client_context, describe_failure
from protocol import crypto
from protocol.encoding import JSONValue, b64e, canonical, parse
from protocol.errors import ProtocolError
from protocol.keys import DeviceKeys

DEFAULT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
MAX_RESPONSE = 256 * 1024 * 1024
MAX_RETRIES = 3
MAX_RETRY_AFTER = 5.0
# Renew a little before the server's expiry so a request never races the deadline.
TOKEN_MARGIN_MS = 30_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """What a device needs to authenticate: its keys and the pinned talks."""

    keys: DeviceKeys
    talks: bytes
    origin: str


class Transport:
    """An aiohttp session bound to one server, with optional device authentication."""

    def __init__(
        self,
        base_url: str,
        *,
        credentials: Credentials | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # Every connection verifies the server's certificate (client.tls): the home's CA
        # file when it has one, else the system's trust store.
        self.ssl_context = ssl_context or client_context(None)
        self.credentials = credentials
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_expires = 0
        self._auth_lock = asyncio.Lock()

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        """The underlying session, created on first use (inside the running loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=CONNECT_TIMEOUT),
                connector=aiohttp.TCPConnector(ssl=self.ssl_context),
            )
        return self._session

    async def close(self) -> None:
        """Close the session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    # -- auth ---------------------------------------------------------------------------

    async def _authenticate(self) -> str:
        creds = self.credentials
        if creds is None:
            raise NetworkError("this request needs a device key (no credentials configured)")
        device = b64e(creds.keys.device_id)
        answer = await self.request(
            "POST", "/v1/auth/challenge", json_body={"device": device}, auth=False
        )
        challenge = _field(answer, "challenge", str)
        signed = canonical(
            {
                "challenge": challenge,
                "device": device,
                "origin": creds.origin,
                "talks": b64e(creds.talks),
            }
        )
        sig = creds.keys.signing.sign(crypto.CTX_AUTH, signed)
        answer = await self.request(
            "POST",
            "/v1/auth/token",
            json_body={"challenge": challenge, "device": device, "sig": b64e(sig)},
            auth=False,
        )
        self._token = _field(answer, "token", str)
        self._token_expires = _field(answer, "expires", int)
        return self._token

    async def token(self, *, renew: bool = False) -> str:
        """A valid bearer token, authenticating when there is none or it is expiring."""
        async with self._auth_lock:
            now = int(time.time() * 1000)
            if renew or self._token is None or now + TOKEN_MARGIN_MS >= self._token_expires:
                return await self._authenticate()
            return self._token

    # -- requests -----------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: JSONValue = None,
        data: bytes | None = None,
        params: Mapping[str, str | int] | None = None,
        auth: bool = True,
        raw: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Send one request; return parsed canonical JSON (or bytes/text when ``raw``).

        Retries once with a fresh token on 401 and a few times on 429/503.
        """
        renewed = False
        attempt = 0
        while True:
            headers: dict[str, str] = {}
            body: bytes | None = None
            if json_body is not None:
                try:
                    body = canonical(json_body)
                except ProtocolError as exc:
                    raise NetworkError(f"cannot encode request: {exc.detail}") from exc
                headers["Content-Type"] = "application/json"
            elif data is not None:
                body = data
                headers["Content-Type"] = "application/octet-stream"
            if auth:
                headers["Authorization"] = f"Bearer {await self.token(renew=renewed)}"
            status, ctype, payload, retry_after = await self._send(
                method, path, body=body, headers=headers, params=params, timeout=timeout
            )
            if status == 401 and auth and not renewed:
                renewed = True
                continue
            if status in (429, 503) and attempt < MAX_RETRIES:
                attempt += 1
                await asyncio.sleep(min(retry_after, MAX_RETRY_AFTER))
                continue
            if status >= 400:
                raise _problem(status, ctype, payload)
            if raw:
                return payload
            try:
                return parse(payload, max_size=MAX_RESPONSE, max_depth=32)
            except ProtocolError as exc:
                raise NetworkError(
                    f"server sent an invalid response to {method} {path}: {exc.detail}"
                ) from exc

    async def _send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None,
        headers: dict[str, str],
        params: Mapping[str, str | int] | None,
        timeout: float | None,
    ) -> tuple[int, str, bytes, float]:
        url = self.base_url + path
        kwargs: dict[str, Any] = {}
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout, sock_connect=CONNECT_TIMEOUT)
        try:
            async with self.session.request(
                method,
                url,
                data=body,
                headers=headers,
                params={k: str(v) for k, v in (params or {}).items()},
                allow_redirects=False,
                **kwargs,
            ) as resp:
                payload = await resp.read()
                retry_after = _retry_after(resp.headers.get("Retry-After"))
                return resp.status, resp.content_type, payload, retry_after
        except TimeoutError as exc:
            raise NetworkError(f"{method} {path}: the server did not answer in time") from exc
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            raise self._tls_error(exc) from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"cannot reach the server at {self.base_url}: {exc}") from exc

    def _tls_error(self, exc: BaseException) -> TlsError:
        return TlsError(
            f"the TLS certificate of {self.base_url} does not verify: "
            f"{describe_failure(exc)} (a private CA or a pinned certificate: --ca FILE)"
        )

    async def get(self, path: str, **params: str | int) -> Any:
        """Authenticated GET returning canonical JSON."""
        return await self.request("GET", path, params=params)

    async def post(self, path: str, body: JSONValue, *, auth: bool = True) -> Any:
        """POST canonical JSON, returning canonical JSON."""
        return await self.request("POST", path, json_body=body, auth=auth)

    async def websocket(self, path: str, **params: str | int) -> aiohttp.ClientWebSocketResponse:
        """Open an authenticated WebSocket (heartbeats keep idle connections honest)."""
        url = self.base_url + path
        for renewed in (False, True):
            headers = {"Authorization": f"Bearer {await self.token(renew=renewed)}"}
            try:
                return await self.session.ws_connect(
                    url,
                    headers=headers,
                    params={k: str(v) for k, v in params.items()},
                    heartbeat=20,
                    timeout=aiohttp.ClientWSTimeout(ws_close=5),
                )
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status == 401 and not renewed:
                    continue
                raise ServerError(exc.status, "websocket_refused", exc.message) from exc
            except TimeoutError as exc:
                raise NetworkError("the server did not accept the WebSocket in time") from exc
            except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
                raise self._tls_error(exc) from exc
            except aiohttp.ClientError as exc:
                raise NetworkError(f"cannot reach the server at {self.base_url}: {exc}") from exc
        raise NetworkError("WebSocket authentication failed")  # pragma: no cover


def _retry_after(value: str | None) -> float:
    if value is None:
        return 1.0
    try:
        return max(0.0, float(int(value)))
    except ValueError:
        return 1.0


def _problem(status: int, ctype: str, payload: bytes) -> ServerError:
    """A :class:`ServerError` from an error answer (problem+json, or whatever came)."""
    code, detail = f"http_{status}", ""
    if ctype in ("application/problem+json", "application/json"):
        try:
            # Lenient on purpose: an error body is shown, never trusted or signed.
            body = json.loads(payload.decode("utf-8", errors="replace"))
        except ValueError:
            body = None
        if isinstance(body, dict):
            if isinstance(body.get("code"), str):
                code = body["code"]
            if isinstance(body.get("detail"), str):
                detail = body["detail"]
            elif isinstance(body.get("title"), str):
                detail = body["title"]
    else:
        detail = payload[:200].decode("utf-8", errors="replace").strip()
    # Keep server-chosen text to one printable line: it ends up in a terminal.
    detail = "".join(c if c.isprintable() else " " for c in detail)[:300]
    return ServerError(status, code, detail)


def _field(value: Any, key: str, kind: type) -> Any:
    """Read one typed field of a server answer (NetworkError if it is missing)."""
    if not isinstance(value, dict) or not isinstance(value.get(key), kind):
        raise NetworkError(f"server answer lacks a valid {key!r}")
    return value[key]
