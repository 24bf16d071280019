"""The inbox: notices per device, long-polling, and WebSocket push."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from tests.server.harness import Harness
from tests.server.promtext import value


async def _inbox(h: Harness, name: str, query: str = "") -> Any:
    return await h.ok("GET", f"/v1/inbox{query}", person=h.people[name])


async def test_notices_per_device(talks: Harness) -> None:
    h = talks
    roster_size = h.require_ledger().size
    sealed = h.seal(h.people["n-adv"], "north-med", "x")
    draft = await h.send(h.people["n-adv"], sealed)
    head = h.people["n-head"]
    assert (await h.post_receipts(head, [h.receipt(head, sealed, draft.index)])).status == 200
    await h.sync()
    # Everybody sees every roster/channel change.
    obs = await _inbox(h, "obs")
    assert [i["kind"] for i in obs["items"]] == ["roster"] * 6 + ["channel"] * 3
    assert obs["next"] == draft.index + 1  # nothing else for the observer up to the end
    # A recipient sees the draft; the sender also sees the receipt for its draft.
    head_items = (await _inbox(h, "n-head", f"?after={roster_size - 1}"))["items"]
    assert head_items == [{"index": draft.index, "kind": "draft"}]
    sender_items = (await _inbox(h, "n-adv", f"?after={roster_size - 1}"))["items"]
    assert sender_items == [
        {"index": draft.index, "kind": "draft"},
        {"index": draft.index + 1, "kind": "receipt"},
    ]
    # Not addressed: nothing.
    assert (await _inbox(h, "s-adv", f"?after={roster_size - 1}"))["items"] == []


async def test_paging_with_limit_and_next(talks: Harness) -> None:
    h = talks
    seen: list[int] = []
    cursor = 0
    for _ in range(20):
        page = await _inbox(h, "obs", f"?after={cursor}&limit=4")
        seen += [i["index"] for i in page["items"]]
        if page["next"] == cursor:
            break
        cursor = page["next"]
    assert seen == list(range(1, h.require_ledger().size))


async def test_bad_inbox_queries(talks: Harness) -> None:
    h = talks
    queries = ("?after=x", "?wait=31", "?limit=0", "?limit=1001", "?after=-2", "?after=1&after=2")
    for query in queries:
        resp = await h.request("GET", f"/v1/inbox{query}", person=h.people["obs"])
        assert resp.status == 400, query
        assert (await resp.json())["code"] == "bad_query"


async def test_long_poll_wakes_on_a_new_draft(talks: Harness) -> None:
    h = talks
    size = h.require_ledger().size
    await h.token(h.people["s-adv"])
    started = time.monotonic()
    poll = asyncio.create_task(_inbox(h, "s-adv", f"?after={size - 1}&wait=10"))
    await asyncio.sleep(0.2)
    assert not poll.done()
    promise = await h.send(h.people["n-adv"], h.seal(h.people["n-adv"], "plenary", "x"))
    got = await asyncio.wait_for(poll, 5)
    assert got["items"] == [{"index": promise.index, "kind": "draft"}]
    assert time.monotonic() - started < 5


async def test_long_poll_returns_empty_after_wait(talks: Harness) -> None:
    h = talks
    size = h.require_ledger().size
    started = time.monotonic()
    got = await _inbox(h, "s-adv", f"?after={size - 1}&wait=1")
    assert got == {"items": [], "next": size - 1}
    assert 0.9 <= time.monotonic() - started < 5


async def _ws(h: Harness, name: str, after: int) -> aiohttp.ClientWebSocketResponse:
    token = await h.token(h.people[name])
    return await h.session.ws_connect(
        f"{h.base}/v1/ws?after={after}", headers={"Authorization": f"Bearer {token}"}
    )


async def test_websocket_pushes_notices(talks: Harness) -> None:
    h = talks
    size = h.require_ledger().size
    ws = await _ws(h, "s-adv", size - 1)
    try:
        promise = await h.send(h.people["n-adv"], h.seal(h.people["n-adv"], "plenary", "x"))
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.TEXT
        assert msg.json() == {"index": promise.index, "kind": "draft"}
    finally:
        await ws.close()


async def test_websocket_replays_from_the_cursor(talks: Harness) -> None:
    h = talks
    ws = await _ws(h, "obs", 0)
    try:
        kinds = []
        for _ in range(9):
            msg = await ws.receive(timeout=5)
            kinds.append(msg.json()["kind"])
        assert kinds == ["roster"] * 6 + ["channel"] * 3
    finally:
        await ws.close()


async def test_websocket_closes_when_the_client_talks(talks: Harness) -> None:
    h = talks
    ws = await _ws(h, "obs", h.require_ledger().size)
    await ws.send_str("hello")
    msg = await ws.receive(timeout=5)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    await ws.close()


async def test_websocket_needs_a_token(talks: Harness) -> None:
    h = talks
    resp = await h.request("GET", "/v1/ws")
    assert resp.status == 401
    assert (await resp.json())["code"] == "unauthenticated"


async def test_websocket_limits_per_device(tmp_path: Any, rng: Any) -> None:
    async with Harness.start(tmp_path, rng, ws_max_per_device=1) as h:
        await h.found()
        ws = await _ws(h, "med", 0)
        try:
            resp = await h.request("GET", "/v1/ws", person=h.people["med"])
            assert resp.status == 503
            assert (await resp.json())["code"] == "unavailable"
            metrics = await (await h.request("GET", "/metrics")).text()
            assert value(metrics, "docket_ws_clients") == 1
        finally:
            await ws.close()


async def test_websocket_closes_when_the_token_expires(tmp_path: Any, rng: Any) -> None:
    async with Harness.start(tmp_path, rng, token_ttl=0.5) as h:
        await h.found()
        ws = await _ws(h, "med", 0)
        started = time.monotonic()
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
        assert time.monotonic() - started < 3
        await ws.close()
