"""A malicious server tampers with delivery: headers, wrapped keys and ciphertext on the
way to a recipient, drafts withheld from the inbox, receipt lists edited.

The log itself stays honest here, so the client must judge every delivery against the
verified log, and views built from the log (receipts, the auditor's pending lists) must
not be moved by what the server's side channels say.
"""

from __future__ import annotations

import asyncio

from client.api import DocketClient
from protocol import crypto
from protocol.encoding import b64e, parse
from protocol.envelope import DraftHeader, Payload, SealedDraft, seal
from protocol.receipt import make_receipt
from protocol.records import DraftId, MessageId, sign_record
from tests.adversarial.conftest import D1, D2, World, alarm_names, expect_alarm
from tests.adversarial.forge import flip, obj, random_keys, resign
from tests.adversarial.proxy import Exchange

T = 20.0


async def _audit_now(world: World) -> tuple[list[bytes], bytes]:
    """Entries and a cosigned note of the real log (the mediator witnesses it first)."""
    med = world.client("med")
    for _ in range(100):
        await med.sync()
        entries = await world.entries()
        note = await world.note()
        if med.log.size == len(entries) and b"/witness/mediator" in note:
            return entries, note
        await asyncio.sleep(0.05)
    raise AssertionError("the log did not settle")


# --- tampered delivery -------------------------------------------------------------------------


async def test_draft_header_swapped_on_delivery(world: World) -> None:
    """GET /v1/drafts answers with another header than the logged one."""
    async with asyncio.timeout(T):
        proxy = await world.proxy()

        def swap(ex: Exchange) -> None:
            body = ex.json()
            body["header"]["time"] += 1
            ex.answer_json(body)

        proxy.after(f"GET /v1/drafts/{D2}", swap)
        client = world.client("s-adv", url=proxy.url)
        with expect_alarm("forged", D2):
            await client.inbox()
        assert client.state.draft_record(D2) is None


async def test_tampered_ciphertext(world: World) -> None:
    """One byte of D2's ciphertext flipped on the way: the recipient signs a 'rejected'
    receipt naming the reason, and the auditor sees that receipt in the log."""
    async with asyncio.timeout(T):
        proxy = await world.proxy()

        def tamper(ex: Exchange) -> None:
            data = bytearray(ex.response)
            data[len(data) // 2] ^= 0x01
            ex.response = bytes(data)

        proxy.after(f"GET /v1/drafts/{D2}/ciphertext", tamper)
        client = world.client("s-adv", url=proxy.url, keystore=True)
        await client.sync()
        result = await world.cli(client, "inbox")
        assert result.code == 1, result.err
        assert "ALARM forged" in result.err
        assert [r["index"] for r in result.data["rejected"]] == [D2]
        assert result.data["rejected"][0]["code"] == "ciphertext_mismatch"
        entries, note = await _audit_now(world)
        rejected = [obj(e) for e in entries if obj(e).get("kind") == "rejected"]
        assert [(r["index"], r["reason"]) for r in rejected] == [(D2, "ciphertext_mismatch")]
        report = world.audit(entries, [note])
        assert report.ok, report.alarms
        plenary = next(c for c in report.channels if c.channel == "plenary")
        assert plenary.receipts["rejected"] == 1


async def test_tampered_wrapped_keys(world: World) -> None:
    """The key map is not the one the sender signed (another recipient's wrapped key
    copied over ours): rejected, and the alarm is recorded."""
    async with asyncio.timeout(T):
        proxy = await world.proxy()
        me = b64e(world.person("s-adv").device)

        def tamper(ex: Exchange) -> None:
            body = ex.json()
            other = next(k for k in body["keys"] if k != me)
            body["keys"][me] = body["keys"][other]
            ex.answer_json(body)

        proxy.after(f"GET /v1/drafts/{D2}", tamper)
        client = world.client("s-adv", url=proxy.url)
        result = await client.inbox()
        assert [(r.index, r.code) for r in result.rejected] == [(D2, "ciphertext_mismatch")]
        assert "forged" in alarm_names(client)
        assert [i.index for i in result.items] == [D1]


# --- withheld drafts ---------------------------------------------------------------------------


def _withhold(ex: Exchange) -> None:
    ex.answer_problem(404, "not_found", "no such draft")


def _hide_from_inbox(index: int) -> object:
    def hide(ex: Exchange) -> None:
        body = ex.json()
        body["items"] = [i for i in body["items"] if i["index"] != index]
        ex.answer_json(body)

    return hide


async def test_draft_withheld_from_recipient(world: World) -> None:
    """D2 is logged for s-adv, but the inbox leaves it out and the server answers 404 for
    it: the client finds it in the verified log anyway and raises ``withheld``."""
    async with asyncio.timeout(T):
        proxy = await world.proxy()
        proxy.before(rf"GET /v1/drafts/{D2}(/ciphertext)?", _withhold)
        proxy.after("GET /v1/inbox", _hide_from_inbox(D2))  # type: ignore[arg-type]
        client = world.client("s-adv", url=proxy.url, keystore=True)
        result = await client.inbox()
        assert proxy.seen(f"GET /v1/drafts/{D2}") == 1  # asked for, refused
        assert result.undelivered == (D2,)
        assert [i.index for i in result.items] == [D1]
        assert [(a.name, a.index) for a in client.state.alarms()] == [("withheld", D2)]
        with expect_alarm("withheld", D2):
            await client.read(D2)
        cli = await world.cli(client, "inbox")  # asks again, alarms again, exit 1
        assert cli.code == 1 and "ALARM withheld" in cli.err
        assert cli.data["undelivered"] == [D2]
        # The auditor lists the draft as never received by s-adv.
        entries, note = await _audit_now(world)
        report = world.audit(entries, [note])
        pending = next(p for p in report.unreceived if p.index == D2)
        assert "s-adv" in pending.missing
        # Once the server delivers, the same home opens it.
        proxy.clear()
        again = DocketClient(client.home, server=proxy.url, keys=world.person("s-adv").keys)
        world.clients.append(again)
        assert D2 in [i.index for i in (await again.inbox()).items]


async def test_inbox_list_withholds_draft(world: World) -> None:
    """Only the inbox notices omit D2: the client does not rely on them, it reads its
    inbox from the verified log and opens D2 without any alarm."""
    async with asyncio.timeout(T):
        proxy = await world.proxy()
        proxy.after("GET /v1/inbox", _hide_from_inbox(D2))  # type: ignore[arg-type]
        client = world.client("s-adv", url=proxy.url)
        result = await client.inbox()
        assert [i.index for i in result.items] == [D1, D2]
        assert alarm_names(client) == []


# --- receipts lists ----------------------------------------------------------------------------


async def test_suppressed_receipt_in_list(world: World) -> None:
    """The server's receipts list for D1 leaves out s-adv's receipt; the sender's view,
    verified from the log, still shows it."""
    async with asyncio.timeout(T):
        proxy = await world.proxy()
        proxy.after(f"GET /v1/drafts/{D1}/receipts", lambda ex: ex.answer_json({"receipts": []}))
        client = world.client("n-adv", url=proxy.url, keystore=True)
        await client.sync()
        lines = {line.member: line for line in client.receipts(D1).lines}
        assert lines["s-adv"].received is not None
        cli = await world.cli(client, "receipts", str(D1))
        assert cli.code == 0, cli.err
        got = {r["member"]: r for r in cli.data["recipients"]}
        assert got["s-adv"]["received"] is not None


async def test_fabricated_receipt_in_list(world: World) -> None:
    """A receipt s-head never signed, shown only in the server's receipts list: the
    client's view (from the log) does not move."""
    async with asyncio.timeout(T):
        fake = make_receipt(
            device=world.person("s-head").keys,
            header=world.template.sealed["D2"].header,
            index=D2,
            kind="received",
            time=world.genesis.time + 1,
        ).to_bytes()
        fake = resign(fake, random_keys().signing, crypto.CTX_RECEIPT)
        proxy = await world.proxy()
        proxy.after(
            f"GET /v1/drafts/{D2}/receipts",
            lambda ex: ex.answer_json({"receipts": [{"entry": parse(fake), "index": 99}]}),
        )
        client = world.client("n-adv", url=proxy.url)
        await client.sync()
        lines = {line.member: line for line in client.receipts(D2).lines}
        assert lines["s-head"].received is None


# --- a participant and the server together ---------------------------------------------------


def _equivocating_draft(world: World) -> SealedDraft:
    """n-adv seals one text but commits to another: a header the server cannot check."""
    h = world.h
    person = world.person("n-adv")
    ledger = h.require_ledger()
    roster = ledger.roster
    sealed = seal(
        sender=person.keys,
        talks=roster.talks,
        channel="plenary",
        counter=ledger.counters[person.device] + 1,
        msg=MessageId(b"e" * 16),
        draft=DraftId(b"f" * 16),
        version=1,
        parents=[],
        roster=roster.head,
        recipients=roster.channel_devices("plenary"),
        payload=Payload(title="shown", body="what the recipients decrypt"),
        time=world.genesis.time + 1000,
        rng=h.rng,
    )
    header = obj(sealed.header.to_bytes())
    header["commit"] = flip(header["commit"])
    signed = sign_record(person.keys.signing, crypto.CTX_DRAFT, header)
    return SealedDraft(
        header=DraftHeader.from_json(signed),
        keys=sealed.keys,
        ciphertext=sealed.ciphertext,
        content_key=sealed.content_key,
    )


async def test_equivocating_sender_commitment_mismatch(world: World) -> None:
    """A sender whose commitment does not match the text it encrypted (so it could later
    claim another text): the recipient refuses it with ``commitment_mismatch``."""
    async with asyncio.timeout(T):
        sealed = _equivocating_draft(world)
        resp = await world.h.post_draft(world.person("n-adv"), sealed)
        assert resp.status == 200, await resp.text()
        await world.h.sync()
        index = world.h.require_ledger().size - 1
        client = world.client("s-adv")
        result = await client.inbox()
        assert [(r.index, r.code) for r in result.rejected] == [(index, "commitment_mismatch")]
        assert "commitment_mismatch" in alarm_names(client)
        assert index not in [i.index for i in result.items]
