"""Participant attacks against the real server: a delegation member (or head) with a valid
device and token trying to do more than its keys and roles allow.

Every refused request must answer a stable problem code and change nothing in the store
(:meth:`~tests.server.harness.Harness.counts`).  Template talks: D1 (index 10) and D2
(12) from n-adv to the plenary, N1 (13) from n-head to north-med, which south cannot see.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import struct
from typing import Any

import pytest
from aiohttp import ClientResponse

from protocol import crypto
from protocol.encoding import b64e, canonical, parse
from protocol.envelope import Payload, SealedDraft, encode_upload, seal
from protocol.receipt import Receipt, make_receipt
from protocol.records import DraftId, MessageId
from protocol.roster import ChangeArgs
from server.clock import now_ms
from tests.adversarial.conftest import D1, D2, N1, R1, World
from tests.adversarial.forge import obj, random_keys, resign
from tests.server.harness import Person

T = 20.0


async def refused(world: World, resp: ClientResponse, status: int, code: str) -> dict[str, Any]:
    """``resp`` is the problem ``(status, code)``; returns the problem body."""
    raw = await resp.read()
    assert (resp.status, resp.content_type) == (status, "application/problem+json"), raw[:300]
    body: dict[str, Any] = parse(raw)
    assert body["code"] == code, body
    return body


async def unchanged(world: World, attempt: Any) -> None:
    """Run ``attempt()`` and check that it left every table as it was."""
    await world.h.sync()
    before = world.h.counts()
    await attempt()
    await asyncio.sleep(0.05)
    assert world.h.counts() == before


def _receipt(world: World, who: str, draft: str, index: int, kind: str = "received") -> Receipt:
    return make_receipt(
        device=world.person(who).keys,
        header=world.template.sealed[draft].header,
        index=index,
        kind=kind,
        time=now_ms(),
    )


# --- forged receipts ---------------------------------------------------------------------------


async def test_forged_receipt_for_draft_not_addressed_to_me(world: World) -> None:
    """s-adv signs 'received' for north's N1, which was never sealed to it."""
    async with asyncio.timeout(T):
        receipt = _receipt(world, "s-adv", "N1", N1)

        async def attempt() -> None:
            resp = await world.h.post_receipts(world.person("s-adv"), [receipt])
            await refused(world, resp, 422, "receipt_mismatch")

        await unchanged(world, attempt)


async def test_forged_receipt_for_another_device(world: World) -> None:
    """A receipt naming s-head's device but signed by s-adv: refused whether s-adv posts
    it (not its device) or it reaches the server on s-head's own token (bad signature)."""
    async with asyncio.timeout(T):
        genuine = _receipt(world, "s-head", "D2", D2)
        forged = Receipt.from_bytes(
            resign(genuine.to_bytes(), world.person("s-adv").keys.signing, crypto.CTX_RECEIPT)
        )

        async def attempt() -> None:
            resp = await world.h.post_receipts(world.person("s-adv"), [forged])
            await refused(world, resp, 403, "forbidden")
            resp = await world.h.post_receipts(world.person("s-head"), [forged])
            await refused(world, resp, 422, "bad_signature")

        await unchanged(world, attempt)


# --- posting as someone else -------------------------------------------------------------------


def _seal(
    world: World,
    sender: Person,
    channel: str,
    *,
    msg: bytes | None = None,
    time: int | None = None,
) -> SealedDraft:
    ledger = world.h.require_ledger()
    roster = ledger.roster
    return seal(
        sender=sender.keys,
        talks=roster.talks,
        channel=channel,
        counter=ledger.counters.get(sender.device, 0) + 1,
        msg=MessageId(msg or os.urandom(16)),
        draft=DraftId(os.urandom(16)),
        version=1,
        parents=[],
        roster=roster.head,
        recipients=roster.channel_devices(channel),
        payload=Payload(title="t", body="b"),
        time=now_ms() if time is None else time,
        rng=os.urandom,
    )


def _upload_with_header(sealed: SealedDraft, header: bytes) -> bytes:
    """The upload framing around a (possibly forged) header."""
    meta = canonical(
        {"header": parse(header), "keys": {b64e(k): b64e(v) for k, v in sealed.keys.items()}}
    )
    return struct.pack(">I", len(meta)) + meta + sealed.ciphertext


@pytest.mark.parametrize("how", ["stolen_upload", "forged_header"])
async def test_posting_as_another_device(world: World, how: str) -> None:
    """s-adv's token with a draft whose sender is n-adv: n-adv's genuine upload (as a
    recipient could copy it), or a header naming n-adv that s-adv signed itself."""
    async with asyncio.timeout(T):
        sealed = _seal(world, world.person("n-adv"), "plenary")
        if how == "stolen_upload":
            body = encode_upload(sealed)
        else:
            header = resign(
                sealed.header.to_bytes(), world.person("s-adv").keys.signing, crypto.CTX_DRAFT
            )
            body = _upload_with_header(sealed, header)

        async def attempt() -> None:
            resp = await world.h.request(
                "POST",
                "/v1/drafts",
                person=world.person("s-adv"),
                data=body,
                headers={"Content-Type": "application/octet-stream"},
            )
            await refused(world, resp, 403, "forbidden")

        await unchanged(world, attempt)


@pytest.mark.parametrize("kind", ["draft", "receipt"])
async def test_backdated_record_refused(world: World, kind: str) -> None:
    """A participant dates its own draft or receipt a day back (to claim it came
    earlier): the honest server refuses it (``bad_time``); only a colluding server could
    log it, and then the auditor flags it (``test_backdated_timestamp``)."""
    async with asyncio.timeout(T):
        day = 24 * 3600 * 1000
        s_adv = world.person("s-adv")
        if kind == "draft":
            sealed = _seal(world, s_adv, "plenary", time=now_ms() - day)

            async def attempt() -> None:
                resp = await world.h.post_draft(s_adv, sealed)
                await refused(world, resp, 422, "bad_time")

        else:
            receipt = make_receipt(
                device=s_adv.keys,
                header=world.template.sealed["D2"].header,
                index=D2,
                kind="received",
                time=now_ms() - day,
            )

            async def attempt() -> None:
                resp = await world.h.post_receipts(s_adv, [receipt])
                await refused(world, resp, 422, "bad_time")

        await unchanged(world, attempt)


async def test_posting_to_another_delegations_channel(world: World) -> None:
    """s-adv seals a draft, correctly, to north's bilateral channel."""
    async with asyncio.timeout(T):
        sealed = _seal(world, world.person("s-adv"), "north-med")

        async def attempt() -> None:
            resp = await world.h.post_draft(world.person("s-adv"), sealed)
            await refused(world, resp, 403, "not_a_member")

        await unchanged(world, attempt)


# --- reading another channel ---------------------------------------------------------------------


def _shape(resp: ClientResponse) -> dict[str, str]:
    """The headers of an answer, without those that differ on every request."""
    return {k: v for k, v in resp.headers.items() if k not in ("Date", "X-Request-ID")}


async def _answer(resp: ClientResponse) -> tuple[int, bytes, dict[str, str]]:
    """Status, problem body and headers, without what differs on every request: the
    request id (in the body it must be the header's, and nothing else may differ)."""
    body = parse(await resp.read())
    assert isinstance(body, dict)
    assert body.pop("request_id") == resp.headers["X-Request-Id"]
    return resp.status, canonical(body), _shape(resp)


@pytest.mark.parametrize("suffix", ["", "/ciphertext", "/receipts"])
async def test_reading_another_channels_draft(world: World, suffix: str) -> None:
    """s-adv asks for north's N1: the answer is byte for byte the one for an index that
    holds no draft (a roster change) and for one beyond the log: status, problem body and
    headers alike, so not even existence leaks."""
    async with asyncio.timeout(T):
        s_adv = world.person("s-adv")
        answers = []
        for index in (N1, 3, 10_000):
            resp = await world.h.request("GET", f"/v1/drafts/{index}{suffix}", person=s_adv)
            answers.append(await _answer(resp))
        assert answers[0][0] == 404
        assert parse(answers[0][1])["code"] == "not_found"
        assert answers[0] == answers[1] == answers[2]


# --- role escalation -----------------------------------------------------------------------------

ESCALATIONS: dict[str, tuple[str, str, ChangeArgs]] = {
    "member_creates_delegation": (
        "n-adv",
        "delegation.create",
        ChangeArgs(delegation="east", name="East", member="e-head", member_name="E", devices=()),
    ),
    "member_sets_channel_members": (
        "n-adv",
        "channel.members",
        ChangeArgs(channel="plenary", delegations=("north",), members=()),
    ),
    "member_enrols_member": (
        "n-adv",
        "member.enrol",
        ChangeArgs(delegation="north", member="n-x", member_name="X", devices=()),
    ),
    "head_enrols_into_other_delegation": (
        "n-head",
        "member.enrol",
        ChangeArgs(delegation="south", member="s-x", member_name="X", devices=()),
    ),
    "head_removes_other_delegations_member": (
        "n-head",
        "member.remove",
        ChangeArgs(member="s-adv"),
    ),
    "head_adds_device_to_other_delegation": (
        "n-head",
        "device.add",
        ChangeArgs(member="s-adv", devices=()),
    ),
    "head_creates_channel": (
        "n-head",
        "channel.create",
        ChangeArgs(channel="side", name="Side", kind="bilateral", delegations=("north",)),
    ),
    "observer_enrols_staff": (
        "obs",
        "staff.enrol",
        ChangeArgs(member="o-x", member_name="X", role="observer", devices=()),
    ),
}


@pytest.mark.parametrize("case", sorted(ESCALATIONS))
async def test_role_escalation(world: World, case: str) -> None:
    """A correctly signed change by someone without the authority for it."""
    async with asyncio.timeout(T):
        author, op, args = ESCALATIONS[case]
        if op in ("delegation.create", "member.enrol", "device.add", "staff.enrol"):
            args = _with_devices(args)
        change = world.h.make_change(world.person(author), op, args)

        async def attempt() -> None:
            resp = await world.h.request(
                "POST", "/v1/roster", person=world.person(author), body=change.to_json()
            )
            await refused(world, resp, 403, "unauthorised_change")

        await unchanged(world, attempt)


def _with_devices(args: ChangeArgs) -> ChangeArgs:
    return dataclasses.replace(args, devices=(random_keys().public,))


@pytest.mark.parametrize(
    ("inviter", "body"),
    [
        ("n-head", {"delegation": "south", "member": "s-x", "role": "member"}),
        ("n-head", {"delegation": "north", "member": "n-x", "role": "head"}),
        ("n-head", {"delegation": None, "member": "o-x", "role": "observer"}),
        ("n-adv", {"delegation": "north", "member": "n-x", "role": "member"}),
        ("obs", {"delegation": None, "member": "o-x", "role": "observer"}),
    ],
)
async def test_invitation_escalation(world: World, inviter: str, body: dict[str, Any]) -> None:
    """Invitations beyond the inviter's authority: a head inviting into another
    delegation or to another role, a member or observer inviting at all."""
    async with asyncio.timeout(T):

        async def attempt() -> None:
            resp = await world.h.request(
                "POST", "/v1/invitations", person=world.person(inviter), body=body
            )
            await refused(world, resp, 403, "forbidden")

        await unchanged(world, attempt)


# --- server-owned fields -------------------------------------------------------------------------

SERVER_FIELDS = ("index", "leaf", "promise")


ROUTES = ("roster", "receipt", "receipts_body", "draft_meta", "draft_header", "cosignature",
          "invitation")  # fmt: skip


@pytest.mark.parametrize(
    ("route", "extra"),
    # A receipt's own "index" names the draft it answers: a field, not the server's.
    [(r, e) for r in ROUTES for e in SERVER_FIELDS if (r, e) != ("receipt", "index")],
)
async def test_server_owned_fields_rejected(world: World, route: str, extra: str) -> None:
    """A client may not set what only the server assigns (log index, leaf hash, promise):
    every write route refuses an unknown field rather than ignoring it."""
    async with asyncio.timeout(T):
        h = world.h
        value: Any = 5 if extra == "index" else b64e(b"x" * 32)
        person = world.person("s-adv")
        kwargs: dict[str, Any]
        if route == "roster":
            change = h.make_change(
                world.person("med"),
                "channel.members",
                ChangeArgs(channel="plenary", delegations=("north", "south"), members=("med",)),
            )
            kwargs = {"body": {**change.to_json(), extra: value}}
            path, person = "/v1/roster", world.person("med")
        elif route in ("receipt", "receipts_body"):
            receipt = _receipt(world, "s-adv", "D2", D2).to_json()
            if route == "receipt":
                kwargs = {"body": {"receipts": [{**receipt, extra: value}]}}
            else:
                kwargs = {"body": {"receipts": [receipt], extra: value}}
            path = "/v1/receipts"
        elif route in ("draft_meta", "draft_header"):
            sealed = _seal(world, person, "plenary")
            header = sealed.header.to_json()
            keys = {b64e(k): b64e(v) for k, v in sealed.keys.items()}
            meta_obj: dict[str, Any] = {"header": header, "keys": keys}
            if route == "draft_meta":
                meta_obj[extra] = value
            else:
                meta_obj["header"] = {**header, extra: value}
            meta = canonical(meta_obj)
            kwargs = {
                "data": struct.pack(">I", len(meta)) + meta + sealed.ciphertext,
                "headers": {"Content-Type": "application/octet-stream"},
            }
            path = "/v1/drafts"
        elif route == "cosignature":
            kwargs = {"body": {"signature": "— x AAAA\n", "size": 1, extra: value}}
            path = "/v1/log/cosignatures"
        else:
            kwargs = {"body": {"delegation": None, "member": "o-x", "role": "observer",
                               extra: value}}  # fmt: skip
            path, person = "/v1/invitations", world.person("med")

        async def attempt() -> None:
            resp = await h.request("POST", path, person=person, **kwargs)
            await refused(world, resp, 422, "unknown_field")

        await unchanged(world, attempt)


# --- replaying one's own old items ---------------------------------------------------------------


async def test_replayed_own_draft_returns_original_promise(world: World) -> None:
    """n-adv re-posts D1's exact bytes: the original promise, nothing new logged; the
    same message id with other bytes is a ``duplicate``."""
    async with asyncio.timeout(T):
        h = world.h
        n_adv = world.person("n-adv")
        d1 = world.template.sealed["D1"]

        async def attempt() -> None:
            answers = []
            for _ in range(2):
                resp = await h.post_draft(n_adv, d1)
                assert resp.status == 200, await resp.text()
                answers.append(parse(await resp.read())["promise"])
            assert answers[0] == answers[1]
            assert (answers[0]["index"], answers[0]["leaf"]) == (D1, b64e(d1.header.leaf))
            again = _seal(world, n_adv, "plenary", msg=d1.header.msg)
            resp = await h.post_draft(n_adv, again)
            await refused(world, resp, 409, "duplicate")

        await unchanged(world, attempt)


async def test_replayed_own_roster_change(world: World) -> None:
    """n-head re-posts its old enrolment of n-adv (entry 3): ``stale_roster``."""
    async with asyncio.timeout(T):
        entries = await world.entries()

        async def attempt() -> None:
            resp = await world.h.request(
                "POST", "/v1/roster", person=world.person("n-head"), body=parse(entries[3])
            )
            await refused(world, resp, 409, "stale_roster")

        await unchanged(world, attempt)


async def test_replayed_own_receipt(world: World) -> None:
    """s-adv re-posts its logged receipt for D1 (entry 11): the exact bytes are a retry
    and get the original promise; a second 'received', re-signed later, is a
    ``duplicate``.  Nothing new is logged either way."""
    async with asyncio.timeout(T):
        entries = await world.entries()
        old = Receipt.from_bytes(entries[R1])
        assert obj(entries[R1])["index"] == D1
        again = _receipt(world, "s-adv", "D1", D1)

        async def attempt() -> None:
            resp = await world.h.post_receipts(world.person("s-adv"), [old])
            assert resp.status == 200, await resp.text()
            [promise] = parse(await resp.read())["promises"]
            assert (promise["index"], promise["leaf"]) == (R1, b64e(old.leaf))
            resp = await world.h.post_receipts(world.person("s-adv"), [again])
            await refused(world, resp, 409, "duplicate")

        await unchanged(world, attempt)


# --- removed members -----------------------------------------------------------------------------


async def test_removed_member_reads_later_drafts(world: World) -> None:
    """n-head removes n-adv.  n-adv cannot log in again, its old token stops working at
    once, and drafts sent afterwards are not sealed to its device."""
    async with asyncio.timeout(T):
        h = world.h
        n_adv = world.person("n-adv")
        token = await h.token(n_adv)  # obtained while still enrolled
        await h.change(world.person("n-head"), "member.remove", ChangeArgs(member="n-adv"))
        later = await world.send("s-adv", "plenary", "after the removal")
        header = h.require_ledger().drafts[h.require_ledger().draft_at[later]].header
        assert n_adv.device not in header.recipients

        for path in (f"/v1/drafts/{later}", f"/v1/drafts/{later}/ciphertext", "/v1/log/checkpoint"):
            resp = await h.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            await refused(world, resp, 401, "bad_token")
        got = await h.ok("POST", "/v1/auth/challenge", body={"device": b64e(n_adv.device)})
        signed = resign(
            canonical(
                {
                    "challenge": got["challenge"],
                    "device": b64e(n_adv.device),
                    "origin": world.genesis.origin,
                    "sig": b64e(bytes(64)),
                    "talks": b64e(world.genesis.talks_id),
                }
            ),
            n_adv.keys.signing,
            crypto.CTX_AUTH,
        )
        resp = await h.request(
            "POST",
            "/v1/auth/token",
            body={"challenge": got["challenge"], "device": b64e(n_adv.device),
                  "sig": obj(signed)["sig"]},
        )  # fmt: skip
        await refused(world, resp, 401, "bad_challenge")


async def test_member_removed_from_channel_reads_later_drafts(world: World) -> None:
    """n-adv is taken out of a working group but stays enrolled (its token stays valid):
    later drafts there are not sealed to it, and asking for one is the same 404 as for
    a draft that does not exist."""
    async with asyncio.timeout(T):
        h = world.h
        await h.add_channel("wg", "working_group", [], ["med", "n-adv", "s-adv"])
        before = await world.send("s-adv", "wg", "while n-adv is in")
        await h.change(
            world.person("med"),
            "channel.members",
            ChangeArgs(channel="wg", delegations=(), members=("med", "s-adv")),
        )
        later = await world.send("s-adv", "wg", "after n-adv left")
        n_adv = world.person("n-adv")
        ledger = h.require_ledger()
        assert n_adv.device in ledger.drafts[ledger.draft_at[before]].header.recipients
        assert n_adv.device not in ledger.drafts[ledger.draft_at[later]].header.recipients
        ok = await h.request("GET", f"/v1/drafts/{before}", person=n_adv)
        assert ok.status == 200
        answers = []
        for index in (later, 10_000):
            resp = await h.request("GET", f"/v1/drafts/{index}/ciphertext", person=n_adv)
            answers.append(await _answer(resp))
        assert answers[0][0] == 404 and answers[0] == answers[1]
        receipt = make_receipt(
            device=n_adv.keys,
            header=ledger.drafts[ledger.draft_at[later]].header,
            index=later,
            kind="received",
            time=now_ms(),
        )
        resp = await h.post_receipts(n_adv, [receipt])
        await refused(world, resp, 422, "receipt_mismatch")
