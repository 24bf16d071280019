"""The server and the device lifecycle: revoked devices refused, device invitations,
grants deciding who may fetch a draft, and nothing written on a refusal."""

from __future__ import annotations

import pytest

from protocol import crypto
from protocol.encoding import b64e, canonical
from protocol.errors import RevokedDeviceError
from protocol.grants import KIND, make_grant_body
from protocol.keys import DeviceKeys
from protocol.records import sign_record
from protocol.roster import ChangeArgs
from tests.server.harness import Harness


async def _revoke(h: Harness, since: int) -> None:
    adv = h.people["n-adv"]
    await h.change(
        h.people["n-head"],
        "device.revoke",
        ChangeArgs(member="n-adv", device=adv.device, since=since),
    )


async def test_revoked_device_tokens_uploads_and_receipts_are_refused(talks: Harness) -> None:
    h = talks
    adv = h.people["n-adv"]
    med = h.people["med"]
    token = await h.token(adv)
    sealed = h.seal(med, "plenary", "For everyone.")
    promise = await h.send(med, sealed)
    late_receipt = h.receipt(adv, sealed, promise.index)
    late_draft = h.seal(adv, "plenary", "From the stolen laptop.")
    await _revoke(h, since=promise.index)
    before = h.counts()
    auth = {"Authorization": f"Bearer {token}"}
    resp = await h.request("GET", "/v1/inbox", headers=auth)
    assert resp.status == 401 and (await resp.json())["code"] == "bad_token"
    # A fresh login is refused too.
    got = await h.ok("POST", "/v1/auth/challenge", body={"device": b64e(adv.device)})
    answer = sign_record(
        adv.keys.signing,
        crypto.CTX_AUTH,
        {
            "challenge": got["challenge"],
            "device": b64e(adv.device),
            "origin": h.require_ledger().genesis.origin,
            "talks": b64e(h.require_ledger().talks),
        },
    )
    resp = await h.request(
        "POST",
        "/v1/auth/token",
        body={"challenge": answer["challenge"], "device": answer["device"], "sig": answer["sig"]},
    )
    assert resp.status == 401
    # Its own session is gone; posted through another caller's, its draft and receipt
    # are refused too (only the signing device may post its records), nothing written.
    for resp in (await h.post_draft(adv, late_draft), await h.post_receipts(adv, [late_receipt])):
        assert resp.status == 401
    for resp in (await h.post_draft(med, late_draft), await h.post_receipts(med, [late_receipt])):
        assert resp.status == 403 and (await resp.json())["code"] == "forbidden"
    # And the ledger itself refuses its signature from now on.
    with pytest.raises(RevokedDeviceError):
        h.require_ledger().check(late_draft.header)
    assert h.counts() == before
    # Senders wrap no keys to it from the next entry on.
    assert adv.device not in h.require_ledger().roster.channel_devices("plenary")


async def test_replayed_enrolment_of_a_revoked_device_is_refused(talks: Harness) -> None:
    h = talks
    adv = h.people["n-adv"]
    await _revoke(h, since=1)
    change = h.make_change(
        h.people["n-head"], "device.add", ChangeArgs(member="n-adv", devices=(adv.keys.public,))
    )
    resp = await h.request("POST", "/v1/roster", person=h.people["n-head"], body=change.to_json())
    assert resp.status == 409 and (await resp.json())["code"] == "roster_conflict"
    # And as a new device invitation's key: the server refuses to even carry it.
    inv = await h.ok(
        "POST",
        "/v1/invitations",
        person=h.people["n-head"],
        body={"delegation": "north", "member": "n-head", "role": "device"},
    )
    before = h.counts()
    record = {
        "device": adv.keys.public.to_json(),
        "invitation": inv["id"],
        "name": "again",
        "talks": b64e(h.require_ledger().talks),
    }
    sig = adv.keys.signing.sign(crypto.CTX_JOIN, canonical(record))
    resp = await h.request(
        "POST",
        f"/v1/invitations/{inv['id']}/accept",
        body={
            "device": adv.keys.public.to_json(),
            "name": "again",
            "sig": b64e(sig),
            "token": inv["token"],
        },
    )
    assert resp.status == 409 and (await resp.json())["code"] == "roster_conflict"
    assert h.counts() == before


async def test_device_invitations_by_head_member_and_nobody_else(talks: Harness) -> None:
    h = talks
    body = {"delegation": "north", "member": "n-adv", "role": "device"}
    await h.ok("POST", "/v1/invitations", person=h.people["n-head"], body=body)
    await h.ok("POST", "/v1/invitations", person=h.people["n-adv"], body=body)
    for other in ("s-head", "s-adv", "med", "aud"):
        resp = await h.request("POST", "/v1/invitations", person=h.people[other], body=body)
        assert resp.status == 403, other
    resp = await h.request(
        "POST",
        "/v1/invitations",
        person=h.people["n-head"],
        body={"delegation": "north", "member": "nobody", "role": "device"},
    )
    assert resp.status == 409


async def test_server_relays_a_draft_only_to_recipients_and_granted_devices(talks: Harness) -> None:
    h = talks
    med, head = h.people["med"], h.people["n-head"]
    sealed = h.seal(med, "north-med", "Before the laptop.")
    promise = await h.send(med, sealed)
    laptop = DeviceKeys.generate(h.rng)
    await h.change(head, "device.add", ChangeArgs(member="n-adv", devices=(laptop.public,)))
    token = await h.login(laptop)
    auth = {"Authorization": f"Bearer {token}"}
    path = f"/v1/drafts/{promise.index}"
    assert (await h.request("GET", path, headers=auth)).status == 404
    body = make_grant_body(
        channel="north-med",
        device=laptop.public,
        upto=promise.index,
        content_keys={promise.index: sealed.content_key},
        rng=h.rng,
    )
    await h.act(head, KIND, body)
    assert (await h.request("GET", path, headers=auth)).status == 200
