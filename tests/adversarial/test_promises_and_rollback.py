"""A malicious server breaks its word over time: promises it never keeps, checkpoints
that stop moving, checkpoints (or a whole store) rolled back.

The server's signed acceptance promise is evidence against it: an entry promised at an
index must appear there, and soon.  A checkpoint smaller than one already verified, or a
store restored from an old backup, must be noticed by every client that saw more.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from client.state import STATE_FILE, LocalState
from protocol.checkpoint import parse_note
from protocol.encoding import b64d, canonical, parse
from protocol.envelope import Payload, split_upload
from protocol.ledger import Ledger
from protocol.receipt import Receipt
from tests.adversarial.conftest import D2, World, expect_alarm
from tests.adversarial.forge import promise
from tests.adversarial.proxy import Exchange

T = 20.0
STALE = 0.3  # seconds a promised entry may stay beyond every checkpoint in these tests
TEXT = Payload(title="counter-proposal", body="text")


def _promise_for(world: World, index: int, leaf: bytes, *, at: int | None = None) -> Any:
    return promise(world.log_key(), world.genesis.origin, index, leaf, at=at).to_json()


async def _next_index(world: World) -> int:
    await world.h.sync()
    return world.h.require_ledger().size


# --- promises ----------------------------------------------------------------------------------


async def test_promise_not_logged_other_entry_at_index(world: World) -> None:
    """The server swallows n-adv's draft, promises it index N, and logs someone else's
    entry there: the promise is proof, and the client raises ``gap`` at N."""
    async with asyncio.timeout(T):
        proxy = await world.proxy()
        promised: list[int] = []

        async def swallow(ex: Exchange) -> None:
            header, _, _ = split_upload(ex.body)
            index = await _next_index(world)
            await world.send("s-head", "south-med", "occupies the promised index")
            promised.append(index)
            ex.answer_json({"promise": _promise_for(world, index, header.leaf)})

        proxy.before("POST /v1/drafts", swallow)
        client = world.client("n-adv", url=proxy.url)
        with expect_alarm("gap") as caught:
            await client.send("plenary", TEXT)
        assert caught[0].index == promised[0]


async def test_promise_never_checkpointed(world: World) -> None:
    """The draft is swallowed and nothing is ever logged at the promised index: once the
    promise is older than the client's patience, ``stale_log``."""
    async with asyncio.timeout(T):
        proxy = await world.proxy()

        async def swallow(ex: Exchange) -> None:
            header, _, _ = split_upload(ex.body)
            ex.answer_json({"promise": _promise_for(world, await _next_index(world), header.leaf)})

        proxy.before("POST /v1/drafts", swallow)
        client = world.client("n-adv", url=proxy.url, stale_after=STALE)
        with expect_alarm("stale_log", await _next_index(world)):
            await client.send("plenary", TEXT)


async def test_frozen_checkpoint(world: World) -> None:
    """The log grows (the draft is really logged) but the server keeps serving the old
    checkpoint: the promised index stays beyond it, and the client raises ``stale_log``."""
    async with asyncio.timeout(T):
        old = await world.note()
        proxy = await world.proxy()
        proxy.before("GET /v1/log/checkpoint", lambda ex: ex.answer(old, content_type="text/plain"))
        client = world.client("n-adv", url=proxy.url, stale_after=STALE)
        await client.sync()
        with expect_alarm("stale_log", client.log.size):
            await client.send("plenary", TEXT)


async def test_frozen_checkpoint_future_promise_time(world: World) -> None:
    """As above, but the server dates its promise a day ahead so that it never looks
    overdue: the client times promises by its own clock, so it still raises ``stale_log``."""
    async with asyncio.timeout(T):
        old = await world.note()
        proxy = await world.proxy()
        proxy.before("GET /v1/log/checkpoint", lambda ex: ex.answer(old, content_type="text/plain"))

        def postdate(ex: Exchange) -> None:
            got = ex.json()["promise"]
            leaf = b64d(got["leaf"], length=32)
            ex.answer_json(
                {"promise": _promise_for(world, got["index"], leaf, at=got["time"] + 86_400_000)}
            )

        proxy.after("POST /v1/drafts", postdate)
        client = world.client("n-adv", url=proxy.url, stale_after=STALE)
        await client.sync()
        with expect_alarm("stale_log", client.log.size):
            await client.send("plenary", TEXT)


async def test_promise_equivocation_same_index(world: World) -> None:
    """s-adv posts receipts for D2 and D3 in one batch.  The server logs only the D3
    one, at N, and promises *both* at N: the D2 receipt would vanish without a trace if
    the client kept one promise per index.  Two signed promises that cannot both hold
    are a ``fork``, caught before either is awaited."""
    async with asyncio.timeout(T):
        d3 = await world.send("n-adv", "plenary", "proposal three")
        proxy = await world.proxy()
        batch: list[Receipt] = []

        def drop_first(ex: Exchange) -> None:
            batch.extend(Receipt.from_json(r) for r in ex.request_json()["receipts"])
            assert sorted(r.index for r in batch) == [D2, d3]
            ex.body = canonical({"receipts": [batch[-1].to_json()]})

        def equivocate(ex: Exchange) -> None:
            [logged] = ex.json()["promises"]
            index = logged["index"]
            ex.answer_json({"promises": [_promise_for(world, index, r.leaf) for r in batch]})

        proxy.before("POST /v1/receipts", drop_first)
        proxy.after("POST /v1/receipts", equivocate)
        client = world.client("s-adv", url=proxy.url)
        with expect_alarm("fork") as caught:
            await client.inbox()
        assert caught[0].index is not None and caught[0].index > d3
        with expect_alarm("fork"):
            await client.send("plenary", TEXT)


async def test_receipt_promised_but_not_logged(world: World) -> None:
    """s-adv's receipt for D2 is swallowed and promised an index the server fills with
    another entry: the client knows what it sent and raises ``gap`` there."""
    async with asyncio.timeout(T):
        proxy = await world.proxy()
        promised: list[int] = []

        async def swallow(ex: Exchange) -> None:
            sent = [Receipt.from_json(r) for r in ex.request_json()["receipts"]]
            assert [r.index for r in sent] == [D2]
            index = await _next_index(world)
            await world.send("s-head", "south-med", "occupies the promised index")
            promised.append(index)
            ex.answer_json({"promises": [_promise_for(world, index, sent[0].leaf)]})

        proxy.before("POST /v1/receipts", swallow)
        client = world.client("s-adv", url=proxy.url)
        with expect_alarm("gap") as caught:
            await client.inbox()
        assert caught[0].index == promised[0]


# --- rollback ----------------------------------------------------------------------------------


async def test_rollback_older_checkpoint(world: World) -> None:
    """After clients verified size N+1, the server serves the (genuine, cosigned)
    checkpoint of size N and the log cut to it."""
    async with asyncio.timeout(T):
        med = world.client("med")
        await med.sync()  # cosigns the checkpoint at N
        entries = await world.entries()
        old = await world.note(len(entries))
        await world.send("n-adv", "plenary", "one more")
        for _ in range(100):
            if (await med.sync()).size > len(entries):
                break
            await asyncio.sleep(0.05)
        proxy = await world.proxy()
        victim = world.client("s-adv", url=proxy.url)
        await victim.sync()
        auditor = world.client("aud", url=proxy.url)
        assert (await auditor.audit()).ok
        verified = victim.log.size

        view = world.view(entries)
        view.cosignatures[len(entries)] = [
            s.line() for s in parse_note(old).signatures if s.name != world.genesis.log_name
        ]
        proxy.view = view
        with expect_alarm("rollback"):
            await victim.sync()
        with expect_alarm("rollback"):  # frozen: it signs nothing any more
            await victim.send("plenary", TEXT)
        report = await auditor.audit()
        assert [(a.code, a.size) for a in report.alarms] == [("rollback", verified)]


async def test_rollback_restored_backup(world: World) -> None:
    """The operator restores an old backup of the data directory and keeps serving: a
    client that saw more raises ``rollback``; once the restored log outgrows what another
    client verified, that client sees a log that does not extend its own: ``fork``."""
    async with asyncio.timeout(T):
        backup = world.tmp / "backup"
        await world.stop_server(world.data)
        shutil.copytree(world.data, backup)
        world.h.base = await world.start_server(world.data)
        world.tokens.clear()
        proxy = await world.proxy()
        await world.send("n-adv", "plenary", "logged after the backup")
        early, late = world.client("s-adv", url=proxy.url), world.client("s-head", url=proxy.url)
        for client in (early, late):
            for _ in range(100):
                if (await client.sync()).size == world.h.require_ledger().size:
                    break
                await asyncio.sleep(0.05)
        verified = early.log.size

        await world.stop_server(world.data)
        shutil.rmtree(world.data)
        shutil.copytree(backup, world.data)
        proxy.upstream = world.h.base = await world.start_server(world.data)
        world.tokens.clear()
        world.h.tokens.clear()
        with expect_alarm("rollback"):
            await early.sync()

        # The restored server goes on logging; its log grows past the old size.
        world.h.ledger = Ledger(world.genesis)
        await world.h.sync()
        for text in ("a", "b"):
            await world.send("s-head", "south-med", text)
        for _ in range(100):
            if int(parse(await world.get("/healthz"))["size"]) > verified:
                break
            await asyncio.sleep(0.05)
        with expect_alarm("fork"):
            for _ in range(100):
                await late.sync()
                await asyncio.sleep(0.05)


def test_promise_clock_in_a_home_made_before_it(tmp_path: Path) -> None:
    """A home whose state predates the promise arrival clock gains the column on open,
    and promises stored before keep working (timed by their own date, as then)."""
    home = tmp_path / "old-home"
    home.mkdir()
    db = sqlite3.connect(home / STATE_FILE)
    db.execute("CREATE TABLE promises (idx INTEGER PRIMARY KEY, promise TEXT NOT NULL)")
    db.execute('INSERT INTO promises VALUES (7, \'{"leaf": "x", "time": 1}\')')
    db.commit()
    db.close()
    state = LocalState(home)
    try:
        assert state.promise_seen() == {}
        state.add_promise(8, {"leaf": "y", "time": 2}, seen=1234)
        assert state.promise_seen() == {8: 1234}
        assert sorted(state.promises()) == [7, 8]
    finally:
        state.close()
