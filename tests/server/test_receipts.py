"""Receipts: batches all-or-nothing, the caller's own device only, who may list them."""

from __future__ import annotations

import pytest

from protocol.encoding import canonical
from protocol.envelope import SealedDraft
from protocol.receipt import Promise
from server.clock import now_ms
from tests.server.harness import Harness


async def _drafts(h: Harness, n: int, channel: str = "plenary") -> list[tuple[SealedDraft, int]]:
    out = []
    for i in range(n):
        sealed = h.seal(h.people["n-adv"], channel, f"draft {i}")
        promise = await h.send(h.people["n-adv"], sealed)
        out.append((sealed, promise.index))
    return out


async def test_a_batch_is_logged_in_order_with_promises(talks: Harness) -> None:
    h = talks
    drafts = await _drafts(h, 3)
    me = h.people["s-adv"]
    receipts = [h.receipt(me, sealed, index) for sealed, index in drafts]
    resp = await h.post_receipts(me, receipts)
    assert resp.status == 200, await resp.text()
    promises = [Promise.from_json(p) for p in (await resp.json())["promises"]]
    assert [p.leaf for p in promises] == [r.leaf for r in receipts]
    assert [p.index for p in promises] == list(range(promises[0].index, promises[0].index + 3))
    for p in promises:
        p.verify(h.init.log_key)
    await h.sync()
    # Acknowledge one after it was received.
    sealed, index = drafts[0]
    ack = h.receipt(me, sealed, index, "acknowledged")
    assert (await h.post_receipts(me, [ack])).status == 200


async def test_one_bad_receipt_logs_none(talks: Harness) -> None:
    h = talks
    drafts = await _drafts(h, 3)
    me = h.people["s-adv"]
    good = [h.receipt(me, sealed, index) for sealed, index in drafts[:2]]
    # Acknowledged before received: the ledger refuses it.
    bad = h.receipt(me, drafts[2][0], drafts[2][1], "acknowledged")
    await h.token(me)
    before = h.counts()
    resp = await h.post_receipts(me, [*good, bad])
    assert resp.status == 422
    assert (await resp.json())["code"] == "receipt_mismatch"
    assert h.counts() == before
    # The good ones alone are fine.
    assert (await h.post_receipts(me, good)).status == 200


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("another-device", 403, "forbidden"),
        ("two-for-one-draft", 409, "duplicate"),
        ("already-received", 409, "duplicate"),
        ("not-a-recipient", 422, "receipt_mismatch"),
        ("wrong-index", 422, "receipt_mismatch"),
        ("old-time", 422, "bad_time"),
        ("empty", 422, "bad_value"),
        ("too-many", 422, "bad_value"),
        ("bad-signature", 422, "bad_signature"),
    ],
)
async def test_bad_batches_change_nothing(
    talks: Harness, case: str, status: int, code: str
) -> None:
    h = talks
    [(sealed, index)] = await _drafts(h, 1, "north-med")
    me = h.people["n-head"]
    body: object
    if case == "another-device":
        receipts = [h.receipt(h.people["med"], sealed, index)]
    elif case == "two-for-one-draft":
        receipts = [
            h.receipt(me, sealed, index),
            h.receipt(me, sealed, index, "acknowledged"),
        ]
    elif case == "already-received":
        assert (await h.post_receipts(me, [h.receipt(me, sealed, index)])).status == 200
        await h.sync()
        receipts = [h.receipt(me, sealed, index)]
    elif case == "not-a-recipient":
        me = h.people["s-adv"]
        receipts = [h.receipt(me, sealed, index)]
    elif case == "wrong-index":
        from protocol.receipt import make_receipt

        receipts = [
            make_receipt(
                device=me.keys,
                header=sealed.header,
                index=index - 1,
                kind="received",
                time=now_ms(),
            )
        ]
    elif case == "old-time":
        from protocol.receipt import make_receipt

        receipts = [
            make_receipt(
                device=me.keys,
                header=sealed.header,
                index=index,
                kind="received",
                time=now_ms() - 20 * 60_000,
            )
        ]
    else:
        receipts = [h.receipt(me, sealed, index)]
    body = {"receipts": [r.to_json() for r in receipts]}
    if case == "empty":
        body = {"receipts": []}
    elif case == "too-many":
        body = {"receipts": [receipts[0].to_json()] * 257}
    elif case == "bad-signature":
        item = receipts[0].to_json()
        item["time"] = int(item["time"]) + 1
        body = {"receipts": [item]}
    await h.token(me)
    before = h.counts()
    resp = await h.request("POST", "/v1/receipts", person=me, data=canonical(body))
    assert resp.status == status, await resp.text()
    assert (await resp.json())["code"] == code
    assert h.counts() == before


@pytest.mark.parametrize(
    ("reader", "status"),
    [
        ("n-adv", 200),  # sender
        ("n-head", 200),  # recipient
        ("med", 200),  # mediator (also a recipient here)
        ("aud", 200),  # auditor
        ("obs", 404),
        ("s-adv", 404),
        ("s-head", 404),
    ],
)
async def test_who_may_list_receipts(talks: Harness, reader: str, status: int) -> None:
    h = talks
    [(sealed, index)] = await _drafts(h, 1, "north-med")
    head = h.people["n-head"]
    assert (await h.post_receipts(head, [h.receipt(head, sealed, index)])).status == 200
    same = {"X-Request-Id": "probe"}  # each problem names its request id
    path = f"/v1/drafts/{index}/receipts"
    resp = await h.request("GET", path, person=h.people[reader], headers=same)
    assert resp.status == status
    if status == 200:
        got = await resp.json()
        [item] = got["receipts"]
        assert item["index"] == index + 1
        assert item["entry"]["kind"] == "received"
    else:
        missing = await h.request(
            "GET", "/v1/drafts/99999/receipts", person=h.people[reader], headers=same
        )
        assert (await resp.json()) == (await missing.json())
