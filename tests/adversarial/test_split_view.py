"""Split view: the server forks its store and shows each side of the talks its own log.

The data directory is copied while the server is stopped and both copies are served,
with the same log key and origin: north's clients talk to one, south's to the other, and
each copy grows with genuine, correctly signed entries.  Each view is internally
consistent, so neither side can tell on its own.  The split is proven as soon as two
views meet: a checkpoint gossiped from one side to the other
(:meth:`~client.api.DocketClient.check_checkpoint`), a witness that sees both, or an
auditor holding checkpoints from both.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass

import aiohttp

from client.api import DocketClient
from protocol.encoding import canonical
from protocol.envelope import Payload
from tests.adversarial.conftest import World, expect_alarm, login

T = 25.0


@dataclass
class Split:
    north_url: str
    south_url: str
    north: DocketClient  # n-adv, sees the north copy
    south: DocketClient  # s-adv, sees the south copy
    north_note: bytes
    south_note: bytes


async def _split(world: World) -> Split:
    """Fork the store, then log one different draft on each side."""
    await world.stop_server(world.data)
    south_data = world.tmp / "south-data"
    shutil.copytree(world.data, south_data)
    (south_data / "server.lock").unlink(missing_ok=True)
    north_url = world.h.base = await world.start_server(world.data)
    south_url = await world.start_server(south_data)
    world.tokens.clear()
    world.h.tokens.clear()
    north = world.client("n-adv", url=north_url)
    south = world.client("s-adv", url=south_url)
    await north.send("plenary", Payload(title="north's view", body="n"))
    await south.send("plenary", Payload(title="south's view", body="s"))
    assert north.log.size == south.log.size
    return Split(
        north_url=north_url,
        south_url=south_url,
        north=north,
        south=south,
        north_note=await world.note(north.log.size, url=north_url),
        south_note=await world.note(south.log.size, url=south_url),
    )


async def test_split_view_detected_by_gossip(world: World) -> None:
    """Each side checks the other's checkpoint: same size, other root, ``fork``; and a
    forked client signs nothing more."""
    async with asyncio.timeout(T):
        s = await _split(world)
        assert s.north.log.root() != s.south.log.root()
        with expect_alarm("fork"):
            await s.south.check_checkpoint(s.north_note)
        with expect_alarm("fork"):
            await s.north.check_checkpoint(s.south_note.decode())
        with expect_alarm("fork"):
            await s.south.send("plenary", Payload(title="t", body="b"))


async def test_split_view_larger_checkpoint_gossiped(world: World) -> None:
    """North's side grows further.  South, shown a larger checkpoint its server cannot
    prove extends its log, raises ``stale_log`` (the server signed a log it will not
    show); north, shown south's smaller one, holds those entries and sees ``fork``."""
    async with asyncio.timeout(T):
        s = await _split(world)
        await s.north.send("plenary", Payload(title="more", body="n2"))
        bigger = await world.note(s.north.log.size, url=s.north_url)
        with expect_alarm("stale_log"):
            await s.south.check_checkpoint(bigger)
        with expect_alarm("fork"):
            await s.north.check_checkpoint(s.south_note)


async def test_split_view_honest_gossip_agrees(world: World) -> None:
    """No split: a checkpoint from another client is accepted, smaller or larger."""
    async with asyncio.timeout(T):
        a, b = world.client("n-adv"), world.client("s-adv")
        await a.sync()
        small = a.checkpoint_note()
        await world.send("s-head", "south-med", "later")
        for _ in range(100):
            if (await b.sync()).size == world.h.require_ledger().size:
                break
            await asyncio.sleep(0.05)
        assert (await b.check_checkpoint(small)).size == a.log.size
        assert (await a.check_checkpoint(b.checkpoint_note())).size == b.log.size
        assert a.log.size == b.log.size  # a synced to check the larger one


async def test_split_view_detected_by_witness(world: World) -> None:
    """The mediator's client witnesses the north copy, then is shown the south copy:
    it refuses to cosign and raises ``fork``, and the auditor holding both checkpoints
    reports two signed roots for one size."""
    async with asyncio.timeout(T):
        s = await _split(world)
        med = world.client("med", url=s.north_url)
        result = await med.sync()
        assert result.cosigned
        home = med.home
        await med.close()
        moved = DocketClient(home, server=s.south_url, keys=world.person("med").keys)
        world.clients.append(moved)
        with expect_alarm("fork"):
            await moved.sync()
        assert moved.state.get("frozen") is not None
        entries = await world.entries(url=s.south_url)
        report = world.audit(entries, [s.north_note, s.south_note])
        assert ("fork", len(entries)) in [(a.code, a.size) for a in report.alarms]


async def test_split_view_cosignature_carried_across(world: World) -> None:
    """North's head cosigns the north copy.  Carried to the south copy, that cosignature
    does not verify on the south root, so the south copy cannot show north's witness
    vouching for its view, and the forged view never reaches a quorum that needs north."""
    async with asyncio.timeout(T):
        s = await _split(world)
        head = world.client("n-head", url=s.north_url)
        assert (await head.sync()).cosigned
        note = await world.note(s.north.log.size, url=s.north_url)
        line = next(ln for ln in note.decode().splitlines() if "/witness/north " in ln)
        bearer = await login(s.south_url, world.person("s-head"), world.genesis)
        body = canonical({"signature": line + "\n", "size": s.north.log.size})
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                s.south_url + "/v1/log/cosignatures",
                data=body,
                headers={"Authorization": f"Bearer {bearer}"},
            ) as resp,
        ):
            assert resp.status == 422, await resp.text()
        result = await s.south.sync()
        assert not any(name.endswith("/witness/north") for name in result.cosigners)


async def test_split_view_detected_by_cli_gossip(world: World) -> None:
    """The same through the CLI: north prints its checkpoint, south checks it (exit 1)."""
    async with asyncio.timeout(T):
        s = await _split(world)
        north = world.client("n-head", url=s.north_url, keystore=True)
        south = world.client("s-head", url=s.south_url, keystore=True)
        printed = await world.cli(north, "checkpoint")
        assert printed.code == 0, printed.err
        note = world.tmp / "north-checkpoint.txt"
        note.write_text(printed.data["note"])
        same = await world.cli(north, "checkpoint", "--check", str(note))
        assert (same.code, same.data["consistent"]) == (0, True)
        checked = await world.cli(south, "checkpoint", "--check", str(note))
        assert checked.code == 1 and "ALARM fork" in checked.err
        assert checked.data["error"]["code"] == "fork"
