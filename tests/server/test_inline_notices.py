"""Inline drafts in notices (``inline=1``), batched WebSocket messages (``batch=1``) and
the in-memory notice feed behind WebSocket push."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from protocol.encoding import b64d, canonical
from protocol.envelope import DraftHeader, keys_from_json, keys_to_json, open_draft
from server.services import notifier as notifier_module
from server.services import relay as relay_module
from server.services.notifier import Notice, Notifier
from tests.server.harness import Harness


async def _ws(h: Harness, name: str, after: int, query: str) -> aiohttp.ClientWebSocketResponse:
    token = await h.token(h.people[name])
    return await h.session.ws_connect(
        f"{h.base}/v1/ws?after={after}{query}", headers={"Authorization": f"Bearer {token}"}
    )


async def _notices(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[Any]:
    out: list[Any] = []
    while len(out) < count:
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.TEXT
        got = msg.json()
        out += got if isinstance(got, list) else [got]
    return out


async def test_websocket_inline_draft_opens_without_a_fetch(talks: Harness) -> None:
    h = talks
    size = h.require_ledger().size
    sender, me = h.people["n-adv"], h.people["s-adv"]
    ws = await _ws(h, "s-adv", size - 1, "&inline=1&batch=1")
    own = await _ws(h, "n-adv", size - 1, "&inline=1")
    try:
        sealed = h.seal(sender, "plenary", "inline me")
        promise = await h.send(sender, sealed)
        [notice] = await _notices(ws, 1)
        assert set(notice) == {"draft", "index", "kind"}
        assert (notice["index"], notice["kind"]) == (promise.index, "draft")
        draft = notice["draft"]
        assert canonical(draft["header"]) == sealed.header.to_bytes()
        assert draft["keys"] == keys_to_json(sealed.keys)
        assert b64d(draft["ciphertext"]) == sealed.ciphertext
        await h.sync()
        roster = h.require_ledger().roster
        header = DraftHeader.from_json(draft["header"])
        opened = open_draft(
            header,
            keys_from_json(draft["keys"]),
            b64d(draft["ciphertext"]),
            me=me.keys,
            talks=roster.talks,
            sender=roster.device(header.sender)[1],
            recipients=header.recipients,
        )
        assert opened.payload.body == "inline me"
        # The sender's own notice stays plain: it has the draft already.
        [mine] = await _notices(own, 1)
        assert mine == {"index": promise.index, "kind": "draft"}
    finally:
        await ws.close()
        await own.close()


async def test_long_poll_inline_draft(talks: Harness) -> None:
    h = talks
    size = h.require_ledger().size
    sender = h.people["n-adv"]
    sealed = h.seal(sender, "plenary", "poll me")
    promise = await h.send(sender, sealed)
    query = f"/v1/inbox?after={size - 1}&inline=1"
    got = await h.ok("GET", query, person=h.people["s-adv"])
    [item] = got["items"]
    assert item["index"] == promise.index
    assert b64d(item["draft"]["ciphertext"]) == sealed.ciphertext
    # Without inline=1 the answer is exactly as before.
    plain = await h.ok("GET", f"/v1/inbox?after={size - 1}", person=h.people["s-adv"])
    assert plain["items"] == [{"index": promise.index, "kind": "draft"}]


async def test_large_drafts_are_not_inlined(talks: Harness, monkeypatch: Any) -> None:
    monkeypatch.setattr(relay_module, "INLINE_MAX", 16)
    h = talks
    size = h.require_ledger().size
    ws = await _ws(h, "s-adv", size - 1, "&inline=1")
    try:
        sender = h.people["n-adv"]
        promise = await h.send(sender, h.seal(sender, "plenary", "too big"))
        assert await _notices(ws, 1) == [{"index": promise.index, "kind": "draft"}]
    finally:
        await ws.close()


@pytest.mark.parametrize("feed_max", [1, 2, 1000])
async def test_feed_overflow_catches_up_from_the_store(
    talks: Harness, monkeypatch: Any, feed_max: int
) -> None:
    # Tiny feeds overflow inside one commit; the pusher must fall back to the inbox
    # table and still deliver every notice once, in log order.
    monkeypatch.setattr(notifier_module, "FEED_MAX", feed_max)
    h = talks
    size = h.require_ledger().size
    ws = await _ws(h, "med", size - 1, "&batch=1")
    try:
        senders = [h.people[n] for n in ("n-adv", "s-adv", "n-head", "s-head")]
        sealed = [h.seal(p, "plenary", f"d{i}") for i, p in enumerate(senders)]
        for person in senders:
            await h.token(person)
        answers = await asyncio.gather(
            *(h.post_draft(p, d) for p, d in zip(senders, sealed, strict=True))
        )
        indices = [(await r.json())["promise"]["index"] for r in answers]
        assert all(r.status == 200 for r in answers)
        got = await _notices(ws, len(indices))
        assert [n["index"] for n in got] == sorted(indices)
    finally:
        await ws.close()


def test_notifier_feed_overflow_and_inline_cache() -> None:
    n = Notifier()
    with n.feed(b"d1", inline=True) as feed, n.feed(b"d2", inline=False) as other:
        big = b'{"ciphertext":"","header":{},"keys":{}}'
        n.publish(
            [b"d1"],
            notices=[
                Notice(index=5, kind="draft", devices=(b"d1", b"d2"), inline=big, sender=b"d2")
            ],
        )
        assert list(feed.items) == [(5, '{"draft":' + big.decode() + ',"index":5,"kind":"draft"}')]
        assert list(other.items) == [(5, '{"index":5,"kind":"draft"}')]  # the sender: plain
        assert n.inline(5, b"d1") == big
        assert n.inline(5, b"d2") is None
        for i in range(6, 6 + notifier_module.FEED_MAX + 1):
            n.publish([], notices=[Notice(index=i, kind="roster", devices=(), broadcast=True)])
        assert feed.overflowed
        assert not feed.items
        feed.reset()
        assert not feed.overflowed
