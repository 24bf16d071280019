"""A cap on open connections per client address.

Rate limits count requests; they do not stop one address from opening thousands of
idle connections (each a file descriptor, buffers, a handler task) and starving
everybody else of them.  The cap wraps aiohttp's protocol factory: a connection from an
address that already holds ``max_conns_per_ip`` is answered with one ``503
unavailable`` problem and closed before aiohttp ever sees it.  The count drops when a
connection closes, so the address gets its slots back.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from aiohttp import web

from protocol.encoding import canonical

_BODY = canonical(
    {
        "code": "unavailable",
        "detail": "too many connections from this address",
        "status": 503,
        "title": "Service Unavailable",
        "type": "urn:docket:error:unavailable",
    }
)
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/problem+json\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n"
    b"Connection: close\r\n\r\n" + _BODY
)


class ConnectionCap:
    """Wraps an aiohttp :class:`web.Server` (the protocol factory) with the cap."""

    def __init__(self, inner: web.Server, per_ip: int) -> None:
        self._inner = inner
        self._per_ip = per_ip
        self.open: defaultdict[str, int] = defaultdict(int)
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        # Everything else (shutdown, connections, ...) is the wrapped server's.
        return getattr(self._inner, name)

    def __call__(self) -> asyncio.Protocol:
        return _Capped(self, self._inner())

    def admit(self, address: str) -> bool:
        """Count a new connection from ``address`` unless it is at the cap."""
        if self.open[address] >= self._per_ip:
            self.refused += 1
            return False
        self.open[address] += 1
        return True

    def release(self, address: str) -> None:
        """A counted connection from ``address`` closed."""
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]


class _Capped(asyncio.Protocol):
    """aiohttp's protocol behind the cap (it has ``__slots__``: wrapped, not patched)."""

    def __init__(self, cap: ConnectionCap, inner: asyncio.Protocol) -> None:
        self._cap = cap
        self._inner = inner
        self._address: str | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self._cap.admit(address):
            self._refused = True
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(REFUSAL)
            transport.close()
            return
        self._address = address
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        if self._address is not None:
            self._cap.release(self._address)
            self._address = None
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._refused:
            return None
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        if not self._refused:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if not self._refused:
            self._inner.resume_writing()


def cap_connections(runner: web.AppRunner, per_ip: int) -> ConnectionCap:
    """Install the cap on a set-up runner (before its sites start)."""
    inner = runner.server
    if inner is None:
        raise RuntimeError("cap_connections needs runner.setup() first")
    cap = ConnectionCap(inner, per_ip)
    runner._server = cap  # type: ignore[assignment]  # the sites' protocol factory
    return cap
