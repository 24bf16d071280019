"""A recording reverse proxy: everything a server sends and receives, kept for grepping.

It forwards every HTTP request (method, path, query, headers, body) to the upstream and
its answer back, and relays WebSocket upgrades frame by frame in both directions.  Each
request line, header block, body and frame is appended to :attr:`RecordingProxy.seen`
as bytes.  It runs its own event loop in a thread, so in-process CLI runs (which start
event loops of their own) can go through it.  Loopback only; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

from aiohttp import ClientSession, ClientTimeout, WSMsgType, web

HOP = {"host", "content-length", "transfer-encoding", "connection", "upgrade", "keep-alive"}
TIMEOUT = 30.0


class RecordingProxy:
    """``with RecordingProxy(upstream) as proxy:`` clients use :attr:`url`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.url = ""
        self.seen: list[bytes] = []
        self.websockets = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None

    def record(self, *parts: bytes) -> None:
        with self._lock:
            self.seen.extend(parts)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(TIMEOUT)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(TIMEOUT)

    async def _start(self) -> None:
        self._session = ClientSession(timeout=ClientTimeout(total=TIMEOUT))
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    @staticmethod
    def _headers(headers: object) -> bytes:
        return "\n".join(f"{k}: {v}" for k, v in headers.items()).encode()  # type: ignore[attr-defined]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        self.record(f"{request.method} {request.path_qs}".encode(), self._headers(request.headers))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request, headers)
        body = await request.read()
        self.record(body)
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as resp:
            answer = await resp.read()
            self.record(self._headers(resp.headers), answer)
            out = {k: v for k, v in resp.headers.items() if k.lower() not in HOP}
            out.pop("Content-Encoding", None)
            return web.Response(status=resp.status, body=answer, headers=out)

    async def _websocket(self, request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
        assert self._session is not None
        self.websockets += 1
        keep = {k: v for k, v in headers.items() if not k.lower().startswith("sec-websocket")}
        upstream = await self._session.ws_connect(
            self.upstream.replace("http", "ws", 1) + request.path_qs, headers=keep
        )
        client = web.WebSocketResponse()
        await client.prepare(request)

        async def pump(src: object, dst: object) -> None:
            async for msg in src:  # type: ignore[attr-defined]
                if msg.type == WSMsgType.TEXT:
                    self.record(msg.data.encode())
                    await dst.send_str(msg.data)  # type: ignore[attr-defined]
                elif msg.type == WSMsgType.BINARY:
                    self.record(msg.data)
                    await dst.send_bytes(msg.data)  # type: ignore[attr-defined]
                else:
                    break
            await dst.close()  # type: ignore[attr-defined]

        tasks = [
            asyncio.create_task(pump(upstream, client)),
            asyncio.create_task(pump(client, upstream)),
        ]
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await upstream.close()
        return client

    def chunks(self) -> Iterator[bytes]:
        with self._lock:
            yield from list(self.seen)
