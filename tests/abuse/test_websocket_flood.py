"""WebSocket floods: closed or refused, while the server keeps serving everybody else.

* a client that sends messages (only pings are allowed), many of them, is closed with
  1008 at the first;
* a message over ``ws_max_msg`` is closed with 1009;
* sockets beyond ``ws_max_per_device`` (or ``ws_max_clients`` in all) are refused with
  ``503 unavailable`` at the handshake, and the slots come back when sockets close;
* through it all a well-behaved socket still gets its notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSCloseCode, WSMsgType

from protocol.crypto import Rng
from tests.faults.counters import bump
from tests.server.harness import Harness, Person

PER_DEVICE = 2
CLIENTS = 5
MAX_MSG = 256


@pytest.fixture
async def ws_server(tmp_path: Path, rng: Rng) -> AsyncIterator[Harness]:
    async with Harness.start(
        tmp_path,
        rng,
        ws_max_per_device=PER_DEVICE,
        ws_max_clients=CLIENTS,
        ws_max_msg=MAX_MSG,
    ) as h:
        await h.standard_talks()
        for person in h.people.values():
            await h.token(person)
        yield h


async def _connect(h: Harness, person: Person) -> aiohttp.ClientWebSocketResponse:
    token = await h.token(person)
    return await h.session.ws_connect(
        h.base.replace("http", "ws", 1) + "/v1/ws",
        headers={"Authorization": f"Bearer {token}"},
        autoclose=False,
    )


async def _refused(h: Harness, person: Person) -> tuple[int, str]:
    token = await h.token(person)
    resp = await h.session.get(
        h.base + "/v1/ws",
        headers={
            "Authorization": f"Bearer {token}",
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    body = await resp.read()
    bump("bad inputs tried")
    if resp.status == 500:
        bump("500s seen")
    return resp.status, json.loads(body)["code"] if body else ""


async def _close_code(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    async with asyncio.timeout(5):
        while True:
            msg = await ws.receive()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
                break
            if msg.type == WSMsgType.ERROR:
                break
    with contextlib.suppress(Exception):
        await ws.close()
    return ws.close_code


async def _healthy(h: Harness) -> None:
    resp = await h.request("GET", "/healthz")
    assert resp.status == 200


async def test_message_floods_are_closed(ws_server: Harness) -> None:
    h = ws_server
    watcher = await _connect(h, h.people["s-adv"])
    flooder = await _connect(h, h.people["n-adv"])
    for i in range(1000):
        try:
            await flooder.send_str(f"flood {i}")
        except ConnectionError:
            break
    bump("bad inputs tried", 1000)
    assert await _close_code(flooder) == WSCloseCode.POLICY_VIOLATION
    big = await _connect(h, h.people["n-adv"])
    await big.send_bytes(b"\x00" * (MAX_MSG * 4))
    bump("bad inputs tried")
    assert await _close_code(big) == WSCloseCode.MESSAGE_TOO_BIG
    await _healthy(h)
    # The well-behaved socket still hears about a new draft.
    sender = h.people["n-adv"]
    promise = await h.send(sender, h.seal(sender, "plenary", "after the flood"))
    async with asyncio.timeout(5):
        while True:
            msg = await watcher.receive()
            assert msg.type == WSMsgType.TEXT, msg
            if json.loads(msg.data) == {"index": promise.index, "kind": "draft"}:
                break
    await watcher.close()


async def test_sockets_beyond_the_limits_are_refused(ws_server: Harness) -> None:
    h = ws_server
    adv = h.people["n-adv"]
    mine = [await _connect(h, adv) for _ in range(PER_DEVICE)]
    for _ in range(5):
        assert await _refused(h, adv) == (503, "unavailable")
    # Other devices are still welcome, up to the global limit.
    others = [await _connect(h, h.people[p]) for p in ("s-adv", "n-head", "s-head")]
    assert len(mine) + len(others) == CLIENTS
    assert await _refused(h, h.people["med"]) == (503, "unavailable")
    await _healthy(h)
    # A closed socket gives its slot back (once the server has seen the close).
    await mine[0].close()
    replacement = await _connect_eventually(h, adv)
    for ws in [*mine[1:], *others, replacement]:
        await ws.close()
    # And every slot comes back once they are all gone.
    people = ("n-adv", "n-adv", "s-adv", "s-adv", "med")
    sockets = [await _connect_eventually(h, h.people[p]) for p in people]
    assert len(sockets) == CLIENTS
    for ws in sockets:
        await ws.close()


async def _connect_eventually(h: Harness, person: Person) -> aiohttp.ClientWebSocketResponse:
    for _ in range(100):
        try:
            return await _connect(h, person)
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 503
            await asyncio.sleep(0.02)
    raise AssertionError("a WebSocket slot never came back")
