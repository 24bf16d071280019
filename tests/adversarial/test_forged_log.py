"""A malicious server rewrites the log it serves: forged, mutated, reordered, replayed,
injected and backdated entries.

Each test puts a :class:`~tests.adversarial.proxy.LogView` in front of a real server: a
complete log, consistent in itself and checkpointed with the server's own log key, that
differs from the honest one by the attack alone.  The real client must raise the named
alarm at the entry's index, and the real auditor, given what the server served, must fail
naming the same index.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from protocol import crypto
from protocol.encoding import b64e
from protocol.envelope import Payload, seal
from protocol.receipt import make_receipt
from protocol.records import DraftId, MessageId
from protocol.roster import ChangeArgs, make_change
from tests.adversarial.conftest import D1, D2, R1, World, alarm_at, expect_alarm
from tests.adversarial.forge import enc, flip, ledger_over, obj, random_keys, resign

T = 20.0


def _new_draft(
    world: World, entries: list[bytes], member: str, *, time: int | None = None
) -> bytes:
    """A genuine next draft by ``member`` to the plenary on top of ``entries``."""
    ledger = ledger_over(entries)
    person = world.person(member)
    roster = ledger.roster
    sealed = seal(
        sender=person.keys,
        talks=roster.talks,
        channel="plenary",
        counter=ledger.counters.get(person.device, 0) + 1,
        msg=MessageId(b"m" * 16),
        draft=DraftId(b"d" * 16),
        version=1,
        parents=[],
        roster=roster.head,
        recipients=roster.channel_devices("plenary"),
        payload=Payload(title="forged", body="the server wrote this"),
        time=world.genesis.time + 60_000 if time is None else time,
        rng=world.h.rng,
    )
    return sealed.header.to_bytes()


async def _served(
    world: World, entries: list[bytes], member: str = "s-adv", *, presync: bool = False
) -> Any:
    """A proxy serving ``entries`` as the log, and ``member``'s client behind it (which,
    with ``presync``, first verified the honest log)."""
    proxy = await world.proxy()
    client = world.client(member, url=proxy.url)
    if presync:
        await client.sync()
    proxy.view = world.view(entries)
    return proxy, client


# --- forged drafts ---------------------------------------------------------------------------


async def _forged_draft_attack(world: World, forge: Any, *, cli: bool = False) -> None:
    async with asyncio.timeout(T):
        entries = await world.entries()
        index = len(entries)
        forged = forge(_new_draft(world, entries, "n-adv"), entries)
        proxy, client = await _served(world, [*entries, forged], presync=True)
        with expect_alarm("forged", index):
            await client.inbox()
        assert client.log.size == index  # nothing of the forgery was kept
        report = world.audit(proxy.view.entries, [proxy.view.note()])
        assert alarm_at(report, index) == ["bad_signature"]
        if cli:  # and `docket audit` through the same malicious server
            auditor = world.client("aud", url=proxy.url, keystore=True)
            result = await world.cli(auditor, "audit")
            assert result.code == 1, result.err
            assert {"code": "bad_signature", "index": index} in [
                {"code": a["code"], "index": a["index"]} for a in result.data["alarms"]
            ]


async def test_forged_draft_random_key(world: World) -> None:
    attacker = random_keys().signing
    await _forged_draft_attack(world, lambda d, _: resign(d, attacker, crypto.CTX_DRAFT), cli=True)


async def test_forged_draft_server_key(world: World) -> None:
    """The server signs a draft with its own checkpoint key: no draft key it holds helps."""
    key = world.log_key()
    await _forged_draft_attack(world, lambda d, _: resign(d, key, crypto.CTX_DRAFT))


async def test_forged_draft_copied_signature(world: World) -> None:
    """A real signature of the same sender, lifted from another draft."""

    def forge(draft: bytes, entries: list[bytes]) -> bytes:
        forged = obj(draft)
        forged["sig"] = obj(entries[D2])["sig"]
        return enc(forged)

    await _forged_draft_attack(world, forge)


# --- every signed field of a draft header, mutated in turn -----------------------------------

MUTATIONS: dict[str, Any] = {
    "channel": lambda v: "north-med",
    "commit": flip,
    "counter": lambda v: v + 1,
    "ct_hash": flip,
    "ct_len": lambda v: v + 1,
    "draft": flip,
    "msg": flip,
    "parents": lambda v: [b64e(b"p" * 32)],
    "recipients": lambda v: v[:-1],
    "roster": flip,
    "sender": None,  # another enrolled device (set in the test)
    "sig": flip,
    "t": lambda v: "receipt",
    "talks": flip,
    "time": lambda v: v + 1,
    "v": lambda v: 2,
    "version": lambda v: 2,
    "wrapped": flip,
}


@pytest.mark.parametrize("field", sorted(MUTATIONS))
async def test_draft_header_field_mutated(world: World, field: str) -> None:
    """The server changes one field of a logged draft (D2) and keeps its signature."""
    async with asyncio.timeout(T):
        entries = await world.entries()
        header = obj(entries[D2])
        if field == "sender":
            header[field] = b64e(world.person("s-head").device)
        else:
            header[field] = MUTATIONS[field](header[field])
        entries[D2] = enc(header)
        proxy, client = await _served(world, entries)
        with expect_alarm("forged", D2):
            await client.sync()
        report = world.audit(entries, [proxy.view.note()])
        assert alarm_at(report, D2), report.alarms


# --- reordering and replay -------------------------------------------------------------------


async def test_reordered_entries(world: World) -> None:
    """Two drafts of one sender swapped: the per-sender counter exposes it."""
    async with asyncio.timeout(T):
        entries = await world.entries()
        entries[D1], entries[D2] = entries[D2], entries[D1]
        proxy, client = await _served(world, entries)
        with expect_alarm("gap", D1):
            await client.sync()
        report = world.audit(entries, [proxy.view.note()])
        assert alarm_at(report, D1) == ["bad_counter"]


async def test_reordered_entries_after_verified_prefix(world: World) -> None:
    """A client that verified the honest order sees the reordered log as a fork."""
    async with asyncio.timeout(T):
        proxy = await world.proxy()
        client = world.client("s-adv", url=proxy.url)
        await client.sync()
        entries = await world.entries()
        entries[D1], entries[D2] = entries[D2], entries[D1]
        proxy.view = world.view(entries)  # same size, other root
        with expect_alarm("fork"):
            await client.sync()
        with expect_alarm("fork"):  # frozen: nothing is signed on a forked history
            await client.send("plenary", Payload(title="t", body="b"))


@pytest.mark.parametrize("replayed", ["draft", "receipt"])
async def test_replayed_entry_at_new_index(world: World, replayed: str) -> None:
    """An old draft or receipt re-served at a new index (same talks, same signature)."""
    async with asyncio.timeout(T):
        entries = await world.entries()
        index = len(entries)
        entries.append(entries[D1 if replayed == "draft" else R1])
        proxy, client = await _served(world, entries, presync=True)
        with expect_alarm("duplicate", index):
            await client.sync()
        report = world.audit(entries, [proxy.view.note()])
        assert alarm_at(report, index) == ["duplicate"]


# --- roster: key substitution, injected devices, channel members -----------------------------


async def test_key_substitution_for_one_sender(world: World) -> None:
    """The log served to south's adviser carries another key for n-adv; everyone else
    gets the honest log."""
    async with asyncio.timeout(T):
        entries = await world.entries()
        enrol = obj(entries[3])
        assert enrol["op"] == "member.enrol" and enrol["args"]["member"] == "n-adv"
        enrol["args"]["devices"] = [random_keys().public.to_json()]
        entries[3] = enc(enrol)
        proxy, victim = await _served(world, entries)
        with expect_alarm("forged", 3):
            await victim.sync()
        honest = world.client("n-head")
        await honest.sync()
        assert honest.roster.devices[world.person("n-adv").device] == "n-adv"
        report = world.audit(entries, [proxy.view.note()])
        assert alarm_at(report, 3) == ["bad_signature"]


def _device_add(world: World, entries: list[bytes], author: str | None) -> bytes:
    attacker = random_keys()
    keys = world.person(author).keys if author else attacker
    change = make_change(
        author=keys,
        roster=ledger_over(entries).roster,
        op="device.add",
        args=ChangeArgs(member="s-adv", devices=(attacker.public,)),
        time=world.genesis.time + 60_000,
    )
    return change.to_bytes()


@pytest.mark.parametrize(
    ("variant", "alarm", "code"),
    [
        ("unknown_author", "unauthorised_member", "unknown_device"),
        ("member_author", "unauthorised_member", "unauthorised_change"),
        ("forged_head_signature", "forged", "bad_signature"),
    ],
)
async def test_injected_device(world: World, variant: str, alarm: str, code: str) -> None:
    """A device added to s-adv without a valid signature of its head."""
    async with asyncio.timeout(T):
        entries = await world.entries()
        index = len(entries)
        if variant == "unknown_author":
            change = _device_add(world, entries, None)
        elif variant == "member_author":
            change = _device_add(world, entries, "s-adv")
        else:
            change = resign(
                _device_add(world, entries, "s-head"), random_keys().signing, crypto.CTX_ROSTER
            )
        entries.append(change)
        proxy, client = await _served(world, entries, "s-head", presync=True)
        with expect_alarm(alarm, index):
            await client.sync()
        report = world.audit(entries, [proxy.view.note()])
        assert alarm_at(report, index) == [code]


@pytest.mark.parametrize(
    ("variant", "alarm", "code"),
    [
        ("head_author", "unauthorised_member", "unauthorised_change"),
        ("forged_mediator_signature", "forged", "bad_signature"),
    ],
)
async def test_channel_member_added_without_mediator(
    world: World, variant: str, alarm: str, code: str
) -> None:
    """The observer slipped into the plenary without the mediator's signature."""
    async with asyncio.timeout(T):
        entries = await world.entries()
        index = len(entries)
        author = "n-head" if variant == "head_author" else "med"
        change = make_change(
            author=world.person(author).keys,
            roster=ledger_over(entries).roster,
            op="channel.members",
            args=ChangeArgs(
                channel="plenary", delegations=("north", "south"), members=("med", "obs")
            ),
            time=world.genesis.time + 60_000,
        ).to_bytes()
        if variant != "head_author":
            change = resign(change, random_keys().signing, crypto.CTX_CHANNEL)
        entries.append(change)
        proxy, client = await _served(world, entries, "n-adv", presync=True)
        with expect_alarm(alarm, index):
            await client.sync()
        assert "obs" not in {m.id for m in client.roster.channel_members("plenary")}
        report = world.audit(entries, [proxy.view.note()])
        assert alarm_at(report, index) == [code]


# --- receipts ------------------------------------------------------------------------------


@pytest.mark.parametrize("signer", ["random_key", "server_key"])
async def test_fabricated_receipt(world: World, signer: str) -> None:
    """The server logs a 'received' receipt s-head never signed."""
    async with asyncio.timeout(T):
        entries = await world.entries()
        index = len(entries)
        genuine = make_receipt(
            device=world.person("s-head").keys,
            header=world.template.sealed["D2"].header,
            index=D2,
            kind="received",
            time=world.genesis.time + 60_000,
        ).to_bytes()
        key = random_keys().signing if signer == "random_key" else world.log_key()
        entries.append(resign(genuine, key, crypto.CTX_RECEIPT))
        proxy, client = await _served(world, entries, "n-adv", presync=True)
        with expect_alarm("forged", index):
            await client.sync()
        report = world.audit(entries, [proxy.view.note()])
        assert alarm_at(report, index) == ["bad_signature"]
        assert any(p.index == D2 and "s-head" in p.missing for p in report.unreceived)


# --- time ------------------------------------------------------------------------------------

DAY = 24 * 3600 * 1000


@pytest.mark.parametrize("kind", ["draft", "receipt"])
async def test_backdated_timestamp(world: World, kind: str) -> None:
    """A colluding sender and server log a record dated a day before the talks began:
    every signature is genuine, so only the times give it away; the auditor flags it."""
    async with asyncio.timeout(T):
        entries = await world.entries()
        index = len(entries)
        when = world.genesis.time - DAY
        if kind == "draft":
            entry = _new_draft(world, entries, "n-adv", time=when)
        else:
            entry = make_receipt(
                device=world.person("s-head").keys,
                header=world.template.sealed["D2"].header,
                index=D2,
                kind="received",
                time=when,
            ).to_bytes()
        entries.append(entry)
        proxy, _ = await _served(world, entries)
        report = world.audit(entries, [proxy.view.note()])
        assert alarm_at(report, index) == ["backdated"], report.alarms
        assert "before" in next(a.reason for a in report.alarms if a.index == index)
