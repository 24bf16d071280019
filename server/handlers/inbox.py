"""``/v1/inbox`` (long-poll) and ``/v1/ws`` (WebSocket push)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSCloseCode, WSMsgType, web

from server.appkeys import AUTH, RELAY, SETTINGS
from server.handlers.common import authenticate, caller_of, json_response, query_int, raw_json
from server.origin import check_origin, parse_allowed
from server.services.notifier import notice_text

log = logging.getLogger("docket.ws")


async def get_inbox(request: web.Request) -> web.Response:
    """``?after=N&wait=S&limit=L[&inline=1]`` -> ``{"items": [{"index", "kind"}], "next": n}``
    (with ``inline=1``, recent small drafts also carry ``"draft"``)."""
    caller = caller_of(request)
    after = query_int(request, "after", default=0, lo=-1)
    wait = query_int(request, "wait", default=0, lo=0, hi=30)
    limit = query_int(request, "limit", default=100, lo=1, hi=1000)
    inline = query_int(request, "inline", default=0, lo=0, hi=1) == 1
    relay = request.app[RELAY]
    items, next_index = await relay.inbox(caller, after=after, wait=float(wait), limit=limit)
    if not inline:
        return json_response(
            {"items": [{"index": i, "kind": k} for i, k in items], "next": next_index}
        )
    # The inline objects are canonical JSON already: assemble the answer around them.
    notices = ",".join(notice_text(i, k, relay.inline(caller, i, k)) for i, k in items)
    return raw_json(f'{{"items":[{notices}],"next":{next_index}}}'.encode())


PING_RATE = 5.0
"""Pings per second a client may send (a burst of :data:`PING_BURST`); more is a flood."""
PING_BURST = 20


async def _read_until_close(ws: web.WebSocketResponse) -> None:
    # Clients may only ping, and not flood: pings are answered here (autoping is off so
    # that they can be counted), anything else from the client ends the socket.
    # Fragments that never finish and inflating frames are bounded by aiohttp's reader
    # (max_msg_size, checked while reassembling and while inflating: 1009).
    loop = asyncio.get_running_loop()
    allowance, last = float(PING_BURST), loop.time()
    async for msg in ws:
        if msg.type is WSMsgType.PING:
            now = loop.time()
            allowance = min(float(PING_BURST), allowance + (now - last) * PING_RATE)
            last = now
            if allowance < 1:
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"ping flood")
                return
            allowance -= 1
            await ws.pong(msg.data)
            continue
        if msg.type is WSMsgType.PONG:
            continue  # the answer to our heartbeat
        if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"clients only ping")
            return
        if msg.type == WSMsgType.ERROR:
            return


async def get_ws(request: web.Request) -> web.WebSocketResponse:
    """Push ``{"index", "kind"}`` notices after ``?after=N`` until the token expires
    (``&inline=1``: small drafts for the caller also carry ``"draft"``; ``&batch=1``:
    each message is a JSON array of the notices ready at that moment)."""
    settings = request.app[SETTINGS]
    check_origin(request, parse_allowed(settings.ws_origins))
    caller, expires = authenticate(request)
    authorization = request.headers.get("Authorization")
    auth = request.app[AUTH]
    after = query_int(request, "after", default=0, lo=-1)
    inline = query_int(request, "inline", default=0, lo=0, hi=1) == 1
    batch = query_int(request, "batch", default=0, lo=0, hi=1) == 1
    relay = request.app[RELAY]
    relay.ws_open(caller)
    try:
        ws = web.WebSocketResponse(
            heartbeat=settings.ws_heartbeat, max_msg_size=settings.ws_max_msg, autoping=False
        )
        await ws.prepare(request)

        async def send(text: str) -> None:
            # A client that stops reading must not hold the pusher (or memory) forever.
            async with asyncio.timeout(settings.ws_send_timeout):
                await ws.send_str(text)

        pusher = asyncio.create_task(
            relay.push(
                caller,
                after=after,
                expires=expires,
                send=send,
                inline=inline,
                batch=batch,
                # Logout or rotation ends the session too, not only expiry.
                alive=lambda: auth.alive(authorization),
            )
        )
        reader = asyncio.create_task(_read_until_close(ws))
        tasks = (pusher, reader)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            server_ended = pusher.done()  # token expired, device removed or shutdown
        finally:
            # Also when this handler is cancelled (the peer went away): never leak them.
            for task in tasks:
                task.cancel()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, Exception) and not isinstance(
                outcome, (TimeoutError, ConnectionError)
            ):
                log.warning("WebSocket ended with %r", outcome)
        await ws.close(code=WSCloseCode.GOING_AWAY if server_ended else WSCloseCode.OK)
        return ws
    finally:
        relay.ws_closed(caller)
