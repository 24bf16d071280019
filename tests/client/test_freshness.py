"""A fresh witness quorum before acting, against a real ``docket-server`` on loopback.

The mediator founds talks whose policy requires a fresh quorum (the mediator's witness
alone here, accepted explicitly).  The mediator's own client cosigns as it syncs, so its
view is current; moving the client's clock past ``max_age`` makes every cosignature it
holds old, exactly what a host that froze the client's view (withholding, say, a
removal) achieves: the client must refuse to seal, and nothing may reach the server.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.api import DocketClient
from client.errors import Alarm
from protocol.envelope import Payload
from protocol.genesis import WitnessPolicy
from tests.client.serverproc import ServerProc, start_server

PASSPHRASE = "correct horse battery staple"


def _key(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProc]:
    proc = start_server(tmp_path / "server")
    try:
        yield proc
    finally:
        proc.stop()


async def _found(home: Path, server: ServerProc, policy: WitnessPolicy) -> DocketClient:
    DocketClient.init_home(home, PASSPHRASE, server=server.url)
    client = DocketClient(home, passphrase=PASSPHRASE)
    await client.found_talks(
        founding_token=server.token,
        title="Freshness",
        mediator="med",
        mediator_name="The Mediator",
        log_key=_key(server.log_key),
        origin=server.origin,
        policy=policy,
    )
    await client.create_channel("office", name="Office", kind="plenary", members=["med"])
    return client


async def _log_size(client: DocketClient) -> int:
    await client.sync(witness=False)
    return client.log.size


def test_client_refuses_to_seal_on_a_view_no_fresh_quorum_vouches_for(
    server: ServerProc,
    tmp_path: Path,
) -> None:
    policy = WitnessPolicy(quorum=1, max_age=60, fresh=True)

    async def scenario() -> None:
        client = await _found(tmp_path / "med", server, policy)
        async with client:
            sent = await client.send("office", Payload(title="t", body="current view"))
            assert sent.index > 0
            # The host freezes this client's view: every cosignature it can get is now
            # older than max_age by the client's clock.
            client.freshness.clock = lambda: time.time() + 3600
            client.freshness.wait = 1.0
            before = await _log_size(client)
            with pytest.raises(Alarm) as info:
                await client.send("office", Payload(title="t", body="stale view"))
            assert info.value.name == "stale_view"
            with pytest.raises(Alarm):
                await client.create_channel("other", name="O", kind="plenary", members=["med"])
            assert await _log_size(client) == before  # nothing was sealed or signed
            # Back on a current view, the client acts again.
            client.freshness.clock = time.time
            await client.send("office", Payload(title="t", body="current again"))

    asyncio.run(scenario())


def test_cosignature_dated_in_the_future_does_not_make_a_view_current(
    server: ServerProc,
    tmp_path: Path,
) -> None:
    """A witness (or a host replaying one) that dates its cosignature ahead."""
    policy = WitnessPolicy(quorum=1, max_age=60, fresh=True)

    async def scenario() -> None:
        client = await _found(tmp_path / "med", server, policy)
        async with client:
            client.freshness.clock = lambda: time.time() - 3600  # our clock is behind
            client.freshness.wait = 1.0
            with pytest.raises(Alarm) as info:
                await client.send("office", Payload(title="t", body="x"))
            assert info.value.name == "stale_view"

    asyncio.run(scenario())


def test_a_policy_without_fresh_acts_as_before(server: ServerProc, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = await _found(tmp_path / "med", server, WitnessPolicy(quorum=1))
        async with client:
            client.freshness.clock = lambda: time.time() + 3600
            await client.send("office", Payload(title="t", body="x"))

    asyncio.run(scenario())


def test_policy_change_counts_only_once_the_old_quorum_cosigned_past_it(
    server: ServerProc, tmp_path: Path
) -> None:
    """A mediator (with the host) lowering the quorum to itself alone: clients that
    knew the old policy trust nothing past the change until the old quorum cosigns."""
    from protocol import crypto
    from protocol.checkpoint import Checkpoint, cosign, parse_note
    from protocol.genesis import ExternalWitness

    outside = crypto.SigningKey.generate(os.urandom)
    name = "outside.example/witness"
    old = WitnessPolicy(
        quorum=2, external=(ExternalWitness(name=name, key=outside.public_bytes()),)
    )

    async def cosign_outside(client: DocketClient) -> None:
        note = parse_note(client.checkpoint_note().encode())
        cp = Checkpoint.from_body(note.text)
        line = cosign(cp, name, outside, timestamp=int(time.time()))
        await client.transport().post("/v1/log/cosignatures", {"signature": line, "size": cp.size})

    async def scenario() -> None:
        client = await _found(tmp_path / "med", server, old)
        async with client:
            await cosign_outside(client)
            assert (await client.sync()).trusted
            await client.set_policy(WitnessPolicy(quorum=1))
            result = await client.sync()  # cosigned by the mediator alone
            assert result.size > 0 and not result.trusted
            await cosign_outside(client)
            assert (await client.sync()).trusted  # the old quorum vouched past the change
            assert client.roster.policy == WitnessPolicy(quorum=1)

    asyncio.run(scenario())
