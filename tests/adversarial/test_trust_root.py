"""Key substitution where keys enter the talks: the genesis a joiner pins, and the device
key an invitee registers before its head enrols it.

Both pass through the server before any signature covers them, so the defences are the
out-of-band comparisons: the talks fingerprint in the invitation code and the device
fingerprint read aloud to the head (``--fingerprint``).
"""

from __future__ import annotations

import asyncio
import os

from client.api import DocketClient
from protocol.genesis import WitnessPolicy, found
from protocol.keys import DeviceKeys
from tests.adversarial.conftest import World, alarm_names, expect_alarm
from tests.adversarial.forge import random_keys
from tests.adversarial.proxy import Exchange

T = 20.0


def _joiner(world: World, url: str) -> DocketClient:
    home = world.tmp / "homes" / "joiner"
    keys = DeviceKeys.generate(os.urandom)
    DocketClient.init_home_state(home, keys.device_id, url)
    client = DocketClient(home, server=url, keys=keys, timeout=10.0)
    world.clients.append(client)
    return client


async def test_key_substitution_at_enrolment(world: World) -> None:
    """The server swaps the key in n-new's accepted invitation: the head, holding the
    fingerprint n-new read aloud, refuses with ``key_change`` and logs nothing."""
    async with asyncio.timeout(T):
        proxy = await world.proxy()
        head = world.client("n-head", url=proxy.url)
        invitation = await head.invite("n-new", role="member")
        joiner = _joiner(world, world.url)
        await joiner.join(invitation.code, name="New Adviser")
        spoken = joiner.public().fingerprint
        attacker = random_keys()

        def substitute(ex: Exchange) -> None:
            body = ex.json()
            for item in body["invitations"]:
                if item["member"] == "n-new":
                    item["device"] = attacker.public.to_json()
            ex.answer_json(body)

        proxy.after("GET /v1/invitations", substitute)
        size = head.log.size
        with expect_alarm("key_change"):
            await head.enrol("n-new", expect_fingerprint=spoken)
        await head.sync()
        assert "n-new" not in head.roster.members
        assert head.log.size == size
        proxy.clear()
        await head.enrol("n-new", expect_fingerprint=spoken)
        assert head.roster.members["n-new"].devices == {joiner.device_id: joiner.public()}


async def test_genesis_substitution_on_join(world: World) -> None:
    """The server answers GET /v1/talks with a genesis of its own making (its own
    'mediator'): the joiner, whose invitation carries the real talks id, refuses it."""
    async with asyncio.timeout(T):
        proxy = await world.proxy()
        med = world.client("med")
        invitation = await med.invite("guest", role="observer")
        fake = found(
            mediator_keys=random_keys(),
            mediator="med",
            mediator_name="Not the mediator",
            origin=world.genesis.origin,
            title=world.genesis.title,
            log_key=world.genesis.log_key,
            witness=WitnessPolicy(quorum=1),
            time=world.genesis.time,
        )

        def substitute(ex: Exchange) -> None:
            body = ex.json()
            body["genesis"] = fake.to_json()
            ex.answer_json(body)

        proxy.after("GET /v1/talks", substitute)
        joiner = _joiner(world, proxy.url)  # its server overrides the code's
        with expect_alarm("key_change"):
            await joiner.join(invitation.code, name="Guest")
        assert joiner.state.genesis() is None
        assert alarm_names(joiner) == ["key_change"]
