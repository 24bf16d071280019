"""WebSocket abuse the client library never commits, each closed while others are served.

* a ping flood: closed with 1008 once past :data:`~server.handlers.inbox.PING_BURST`;
* fragments that never finish: a text frame without FIN and endless continuations,
  closed with 1009 once past ``ws_max_msg``;
* a permessage-deflate bomb: one small compressed frame that inflates to megabytes,
  closed with 1009 without inflating it all;
* a reader that never reads: once its socket buffers are full the server's bounded
  send (``ws_send_timeout``) gives up and closes it; the notices it missed stay in the
  inbox table, nothing piles up in memory;
* a gzip-bomb request body: ``413 too_large`` at once, never inflated.

Meanwhile a lag probe on the event loop the server runs on must stay under 100 ms, and
a well-behaved WebSocket keeps getting its notices.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from pathlib import Path

import aiohttp
import pytest

from protocol.crypto import Rng
from tests.abuse.conftest import live
from tests.abuse.rawws import OP_CONT, OP_PING, OP_TEXT, LagProbe, connect, frame
from tests.faults.counters import bump
from tests.server.harness import Harness

MAX_LAG = 0.100
MAX_MSG = 4096


async def _notices_flow(h: Harness) -> None:
    """A well-behaved socket still gets the notice of a new draft."""
    token = await h.token(h.people["n-head"])
    async with h.session.ws_connect(
        h.base + f"/v1/ws?after={h.require_ledger().size - 1}",
        headers={"Authorization": f"Bearer {token}"},
    ) as ws:
        sender = h.people["n-adv"]
        promise = await h.send(sender, h.seal(sender, "plenary", "still flowing"))
        async with asyncio.timeout(10):
            msg = await ws.receive()
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        assert json.loads(msg.data)["index"] == promise.index


async def test_ping_flood_is_closed(tmp_path: Path, rng: Rng) -> None:
    async with live(tmp_path, rng, ws_max_msg=MAX_MSG) as h, LagProbe() as lag:
        token = await h.token(h.people["obs"])
        async with connect(h.base, "/v1/ws?after=-1", token) as raw:
            for _ in range(2000):
                try:
                    await raw.send(frame(OP_PING, b"x"))
                except ConnectionError:
                    break
            bump("bad inputs tried")
            assert await raw.close_code() == 1008
        await _notices_flow(h)
    assert lag.worst < MAX_LAG, lag.worst


async def test_fragments_that_never_finish_are_closed(tmp_path: Path, rng: Rng) -> None:
    async with live(tmp_path, rng, ws_max_msg=MAX_MSG) as h, LagProbe() as lag:
        token = await h.token(h.people["obs"])
        async with connect(h.base, "/v1/ws?after=-1", token) as raw:
            await raw.send(frame(OP_TEXT, b"a" * 1000, fin=False))
            for _ in range(100):  # never a final fragment
                try:
                    await raw.send(frame(OP_CONT, b"a" * 1000, fin=False))
                except ConnectionError:
                    break
            bump("bad inputs tried")
            assert await raw.close_code() == 1009
        await _notices_flow(h)
    assert lag.worst < MAX_LAG, lag.worst


async def test_permessage_deflate_bomb_is_closed(tmp_path: Path, rng: Rng) -> None:
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = deflate.compress(b"a" * (64 * 1024 * 1024)) + deflate.flush(zlib.Z_SYNC_FLUSH)
    bomb = bomb[:-4]  # permessage-deflate drops the 00 00 ff ff tail
    assert len(bomb) < 128 * 1024
    async with live(tmp_path, rng, ws_max_msg=MAX_MSG) as h, LagProbe() as lag:
        token = await h.token(h.people["obs"])
        async with connect(h.base, "/v1/ws?after=-1", token, deflate=True) as raw:
            await raw.send(frame(OP_TEXT, bomb, rsv1=True))
            bump("bad inputs tried")
            assert await raw.close_code() == 1009
        await _notices_flow(h)
    assert lag.worst < MAX_LAG, lag.worst


async def _ws_clients(h: Harness) -> int:
    resp = await h.request("GET", "/metrics")
    for line in (await resp.text()).splitlines():
        if line.startswith("docket_ws_clients "):
            return int(float(line.split()[1]))
    raise AssertionError("no docket_ws_clients gauge")


async def test_reader_that_never_reads_is_closed(tmp_path: Path, rng: Rng) -> None:
    async with (
        live(tmp_path, rng, ws_max_msg=MAX_MSG, ws_send_timeout=1.0) as h,
        LagProbe() as lag,
    ):
        token = await h.token(h.people["s-adv"])
        base = await _ws_clients(h)
        async with connect(h.base, "/v1/ws?after=-1&inline=1", token, rcvbuf=4096) as raw:
            sender = h.people["n-adv"]
            assert await _ws_clients(h) == base + 1
            closed = False
            for i in range(400):  # bounded: the buffers fill long before
                await h.send(sender, h.seal(sender, "plenary", "x" * 40_000 + str(i)))
                if i % 10 == 9 and await _ws_clients(h) == base:
                    closed = True
                    break
            for _ in range(100):
                if closed or await _ws_clients(h) == base:
                    closed = True
                    break
                await asyncio.sleep(0.05)
            assert closed, "the server still holds a socket nobody reads"
            bump("bad inputs tried")
            raw.writer.transport.abort()
        await _notices_flow(h)
        # The missed notices are still in the inbox for a reader that comes back.
        got = await h.ok("GET", "/v1/inbox?after=0&limit=1000", person=h.people["s-adv"])
        assert sum(1 for i in got["items"] if i["kind"] == "draft") >= 10
    assert lag.worst < MAX_LAG, lag.worst


@pytest.mark.parametrize("path", ["/v1/auth/challenge", "/v1/drafts", "/v1/receipts"])
async def test_gzip_bomb_request_body_gets_413(tmp_path: Path, rng: Rng, path: str) -> None:
    bomb = gzip.compress(b"{" + b" " * (64 * 1024 * 1024) + b"}", 9)
    async with live(tmp_path, rng) as h, LagProbe() as lag:
        token = await h.token(h.people["n-adv"])
        before = h.counts()
        resp = await h.session.post(
            h.base + path,
            data=bomb,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Encoding": "gzip",
                "Content-Type": "application/json",
            },
        )
        body = await resp.json()
        bump("bad inputs tried")
        assert (resp.status, body["code"]) == (413, "too_large"), body
        assert h.counts() == before
        await _notices_flow(h)
    assert lag.worst < MAX_LAG, lag.worst
