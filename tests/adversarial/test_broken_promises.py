"""A broken promise becomes evidence: the client that caught it exports the server's own
signed promise with the signed log that contradicts it, anyone verifies the bundle
offline, and the auditor reports it as ``broken_promise``.

Two ways to break a promise, each from a malicious server in front of the real one:
another entry logged at the promised index (``substituted``: the log key contradicts
itself), and checkpoints withheld past the bound while the witnesses, shown the same
frozen log, keep cosigning it (``unlogged``)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from client.errors import VerificationError
from protocol.brokenpromise import (
    PROMISE_BOUND,
    SUBSTITUTED,
    UNLOGGED,
    BrokenPromiseBundle,
    verify_broken_promise,
)
from protocol.encoding import b64d
from protocol.envelope import Payload, split_upload
from protocol.errors import ProtocolError
from tests.adversarial.conftest import World, expect_alarm
from tests.adversarial.forge import promise
from tests.adversarial.proxy import Exchange

T = 30.0
STALE = 0.3
TEXT = Payload(title="counter-proposal", body="text")


def _audit_alarms(world: World, entries: list[bytes], notes: list[bytes], bundle: bytes) -> Any:
    from client.auditor import audit_log

    report = audit_log(
        entries,
        pinned_talks=World.talks(entries),
        checkpoints=notes,
        workers=1,
        broken_promises=[bundle],
        now=int(time.time()),
    )
    return [(a.code, a.index) for a in report.alarms]


async def test_promise_broken_by_another_entry_is_exported_and_audited(
    world: World, tmp_path: Path
) -> None:
    """The server swallows the draft, promises it index N, and logs someone else's entry
    there: ``gap``, then a bundle proving the log key signed both."""
    async with asyncio.timeout(T):
        proxy = await world.proxy()
        promised: list[int] = []

        async def swallow(ex: Exchange) -> None:
            header, _, _ = split_upload(ex.body)
            await world.h.sync()
            index = world.h.require_ledger().size
            await world.send("s-head", "south-med", "occupies the promised index")
            promised.append(index)
            signed = promise(world.log_key(), world.genesis.origin, index, header.leaf)
            ex.answer_json({"promise": signed.to_json()})

        proxy.before("POST /v1/drafts", swallow)
        client = world.client("n-adv", url=proxy.url, keystore=True)
        with expect_alarm("gap"):
            await client.send("plenary", TEXT)
        [index] = promised

        bundle = await client.disclose_broken_promise(index)
        data = bundle.to_bytes()
        report = verify_broken_promise(data, world.genesis.talks_id, now=int(time.time()))
        assert (report.kind, report.index) == (SUBSTITUTED, index)
        assert b"counter-proposal" not in data and b"occupies" not in data

        # The CLI writes it privately and verifies it against the fingerprint.
        out = tmp_path / "promise.json"
        wrote = await world.cli(client, "disclose", str(index), "--broken-promise", "--out",
                                str(out))  # fmt: skip
        assert wrote.code == 0, wrote.err
        assert wrote.data["kind"] == SUBSTITUTED and out.stat().st_mode & 0o077 == 0
        checked = await world.cli(client, "verify-evidence", str(out), "--talks",
                                  world.genesis.fingerprint)  # fmt: skip
        assert checked.code == 0 and checked.data["t"] == "broken_promise", checked.err

        # The auditor, given the log and the bundle, reports the broken promise.
        entries = await world.entries()
        alarms = _audit_alarms(world, entries, [await world.note()], data)
        assert ("broken_promise", index) in alarms

        # Any changed byte and the proof is gone.
        for offset in range(0, len(data), max(1, len(data) // 30)):
            changed = bytearray(data)
            changed[offset] ^= 0x01
            with pytest.raises(ProtocolError):
                verify_broken_promise(bytes(changed), world.genesis.talks_id)


async def test_withheld_checkpoints_past_the_bound_are_proven_with_the_witnesses(
    world: World,
) -> None:
    """The draft is logged, but the server withholds every newer checkpoint from the
    sender and from the mediator's witness alike, and its promise is older than the bound
    (the server's own time).  The sender raises ``stale_log``; once the witness cosigns
    the frozen checkpoint, the bundle proves the promise was not kept in time."""
    async with asyncio.timeout(T):
        frozen = await world.note()
        size = int(frozen.split(b"\n")[1])
        proxy = await world.proxy()

        async def freeze(ex: Exchange) -> None:
            # Always the same old size, with whatever cosignatures it has collected.
            ex.answer(await world.note(size), content_type="text/plain")

        def backdate(ex: Exchange) -> None:
            got = ex.json()["promise"]
            at = got["time"] - (PROMISE_BOUND + 100) * 1000
            leaf = b64d(got["leaf"], length=32)
            ex.answer_json(
                {
                    "promise": promise(
                        world.log_key(), got["origin"], got["index"], leaf, at=at
                    ).to_json()
                }  # fmt: skip
            )

        proxy.before("GET /v1/log/checkpoint", freeze)
        proxy.after("POST /v1/drafts", backdate)
        client = world.client("n-adv", url=proxy.url, stale_after=STALE)
        await client.sync()
        with expect_alarm("stale_log", size):
            await client.send("plenary", TEXT)

        # Before any witness has cosigned the frozen view since the bound, nothing is
        # proven (a promise merely late is no evidence).
        with pytest.raises(VerificationError) as early:
            await client.disclose_broken_promise(size)
        assert early.value.code == "not_misbehaviour"

        witness = world.client("med", url=proxy.url)
        assert (await witness.sync()).cosigned
        bundle = await client.disclose_broken_promise(size)
        report = verify_broken_promise(bundle, world.genesis.talks_id, now=int(time.time()))
        assert (report.kind, report.index, report.checkpoint_size) == (UNLOGGED, size, size)
        assert [c.rsplit("/", 1)[-1] for c in report.cosigners] == ["mediator"]
        # The auditor, shown the same frozen log, reports it.
        entries = (await world.entries())[:size]
        alarms = _audit_alarms(world, entries, [await world.note(size)], bundle.to_bytes())
        assert ("broken_promise", size) in alarms


async def test_kept_promise_proves_nothing(world: World) -> None:
    """An honest server: the client holds no promise once the entry is checkpointed, and a
    bundle made by hand from a kept promise does not verify."""
    async with asyncio.timeout(T):
        client = world.client("n-adv")
        sent = await client.send("plenary", TEXT)
        with pytest.raises(VerificationError) as info:
            await client.disclose_broken_promise(sent.index)
        assert info.value.code == "not_misbehaviour"
        # A hand-made bundle with the very entry promised: not a broken promise.
        log = client.log
        stored = client.state.checkpoint()
        assert stored is not None
        from client.evidence import _proven

        kept = BrokenPromiseBundle(
            genesis=_proven(log, 0, stored.size),
            roster=tuple(_proven(log, i, stored.size) for i in log.roster_indices),
            promise=promise(
                world.log_key(), world.genesis.origin, sent.index, log.leaf(sent.index)
            ),
            checkpoint=stored.note,
            entry=_proven(log, sent.index, stored.size),
        )
        with pytest.raises(ProtocolError) as not_broken:
            verify_broken_promise(kept, world.genesis.talks_id)
        assert not_broken.value.code == "not_misbehaviour"
