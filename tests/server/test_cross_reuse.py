"""Genuine signed items reused where they do not belong: another channel, other talks.

Every item a client signs names its talks (and a draft its channel and recipients), so
a genuine item lifted into another channel or onto another talks' server must be
refused with a stable code before anything is written: each test compares the row
counts of every table the request could change before and after.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from aiohttp import ClientResponse

from protocol.crypto import Rng
from protocol.encoding import canonical
from protocol.envelope import Payload, SealedDraft, keys_to_json, seal
from protocol.records import DraftId, MessageId
from protocol.roster import ChangeArgs
from server.clock import now_ms
from tests.server.harness import Harness, Person


async def _code(resp: ClientResponse) -> tuple[int, str]:
    body = await resp.json()
    return resp.status, str(body.get("code"))


def _upload(header_json: object, sealed: SealedDraft) -> bytes:
    meta = canonical({"header": header_json, "keys": keys_to_json(sealed.keys)})
    return struct.pack(">I", len(meta)) + meta + sealed.ciphertext


async def test_draft_signed_for_one_channel_posted_into_another_is_refused(
    talks: Harness,
) -> None:
    h = talks
    sender = h.people["n-adv"]
    sealed = h.seal(sender, "north-med", "for north and the mediator")
    header = sealed.header.to_json()
    assert isinstance(header, dict)
    before = h.counts()
    # The channel rewritten: the sender's signature no longer covers the header.
    moved = dict(header, channel="plenary")
    resp = await h.request(
        "POST",
        "/v1/drafts",
        person=sender,
        data=_upload(moved, sealed),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert await _code(resp) == (422, "bad_signature")
    # Genuinely signed for north-med, but wrapped for the plenary's devices.
    ledger = h.require_ledger()
    sender.counter += 1
    wrong = seal(
        sender=sender.keys,
        talks=ledger.talks,
        channel="north-med",
        counter=sender.counter,
        msg=MessageId(os.urandom(16)),
        draft=DraftId(os.urandom(16)),
        version=1,
        parents=(),
        roster=ledger.roster.head,
        recipients=ledger.roster.channel_devices("plenary"),
        payload=Payload(title="t", body="b"),
        time=now_ms(),
        rng=h.rng,
    )
    status, code = await _code(await h.post_draft(sender, wrong))
    assert (status, code) == (422, "recipient_mismatch")
    assert h.counts() == before


async def test_receipt_for_a_draft_in_one_channel_pointed_at_another_is_refused(
    talks: Harness,
) -> None:
    h = talks
    adv = h.people["n-adv"]
    head = h.people["n-head"]
    bilateral = h.seal(adv, "north-med", "bilateral")
    b_index = (await h.send(adv, bilateral)).index
    plenary = h.seal(adv, "plenary", "plenary")
    p_index = (await h.send(adv, plenary)).index
    before = h.counts()
    # A genuine receipt of the bilateral draft, claimed for the plenary draft's index.
    moved = h.receipt(head, bilateral, p_index)
    assert await _code(await h.post_receipts(head, [moved])) == (422, "receipt_mismatch")
    assert h.counts() == before
    assert b_index != p_index


async def test_items_signed_in_other_talks_are_refused(tmp_path: Path, rng: Rng) -> None:
    async with (
        Harness.start(tmp_path / "one", rng) as one,
        Harness.start(tmp_path / "two", rng) as two,
    ):
        await one.standard_talks()
        await two.standard_talks()
        # The same device (the same keys) takes part in both talks.
        adv = one.people["n-adv"]
        twin = Person(
            member="n-twin", name="N-Twin", role="member", delegation="north", keys=adv.keys
        )
        await two.change(
            two.people["n-head"],
            "member.enrol",
            ChangeArgs(
                delegation="north",
                member="n-twin",
                member_name="N-Twin",
                devices=(adv.keys.public,),
            ),
        )
        two.people["n-twin"] = twin
        head = one.people["n-head"]
        sealed = one.seal(head, "north-med", "genuine in talks one")
        index = (await one.send(head, sealed)).index
        receipt = one.receipt(adv, sealed, index)
        change = one.make_change(
            one.people["med"],
            "channel.create",
            ChangeArgs(
                channel="extra",
                name="Extra",
                kind="plenary",
                delegations=("north", "south"),
                members=("med",),
            ),
        )
        before = two.counts()
        draft_code = await _code(await two.post_draft(twin, one.seal(adv, "plenary", "x")))
        receipt_code = await _code(await two.post_receipts(twin, [receipt]))
        change_code = await _code(
            await two.request("POST", "/v1/roster", person=twin, body=change.to_json())
        )
        assert two.counts() == before
        assert draft_code == (422, "wrong_talks")
        assert receipt_code == (422, "wrong_talks")
        assert change_code == (422, "wrong_talks")
