"""Attacks on what a client signs: a made-up ``stale_roster`` answer, and a withheld
removal under a fresh-quorum policy.

A server that answers an upload with ``409 stale_roster`` while its own signed log
shows no newer roster: the client must not re-seal (handing the server the same keys
again, or new ones for a roster it made up), must not loop, and must raise an alarm."""

from __future__ import annotations

import asyncio
import time

from protocol.envelope import Payload
from protocol.genesis import WitnessPolicy
from tests.adversarial.conftest import World, expect_alarm
from tests.adversarial.proxy import Exchange

T = 20.0
TEXT = Payload(title="counter-proposal", body="text")


async def test_stale_roster_claim_is_alarmed_and_not_retried(world: World) -> None:
    async with asyncio.timeout(T):
        proxy = await world.proxy()

        def refuse(ex: Exchange) -> None:
            ex.answer_problem(409, "stale_roster", "the roster changed")

        proxy.before("POST /v1/drafts", refuse)
        client = world.client("n-adv", url=proxy.url)
        await client.sync()
        size = client.log.size
        with expect_alarm("stale_roster_claim"):
            await client.send("plenary", TEXT)
        # One upload and exactly one more attempt's worth of checking: never a second
        # upload of a re-sealed draft, and nothing was logged.
        assert proxy.seen("POST /v1/drafts") == 1
        assert any(a.name == "stale_roster_claim" for a in client.state.alarms())
        await client.sync()
        assert client.log.size == size


async def test_stale_roster_claim_on_a_roster_change_is_alarmed(world: World) -> None:
    async with asyncio.timeout(T):
        proxy = await world.proxy()
        proxy.before("POST /v1/roster", lambda ex: ex.answer_problem(409, "stale_roster"))
        client = world.client("med", url=proxy.url)
        await client.sync()
        with expect_alarm("stale_roster_claim"):
            await client.create_channel(
                "legal", name="Legal", kind="working_group", delegations=["north"]
            )
        assert proxy.seen("POST /v1/roster") == 1


async def test_server_withholding_a_removal_never_gets_a_key_wrapped_for_the_removed(
    world: World,
) -> None:
    """The host hides s-adv's removal from n-adv (serving the checkpoint from before it).
    Under a fresh-quorum policy n-adv refuses to seal once no fresh quorum vouches for
    that frozen view, so no content key for s-adv ever leaves n-adv."""
    async with asyncio.timeout(T + 20):
        med = world.client("med")
        await med.set_policy(WitnessPolicy(quorum=1, max_age=10, fresh=True))
        await med.sync()  # the mediator witnesses the view with the new policy
        frozen = await world.note()
        s_head = world.client("s-head")
        await s_head.remove("s-adv")
        await med.sync()
        proxy = await world.proxy()
        proxy.before(
            "GET /v1/log/checkpoint", lambda ex: ex.answer(frozen, content_type="text/plain")
        )
        uploads: list[bytes] = []
        proxy.before("POST /v1/drafts", lambda ex: uploads.append(ex.body))
        victim = world.client("n-adv", url=proxy.url)
        victim.freshness.wait = 1.0
        victim.freshness.clock = lambda: time.time() + 11  # the frozen quorum has aged
        with expect_alarm("stale_view"):
            await victim.send("plenary", TEXT)
        assert uploads == []  # nothing sealed: no key wrapped for the removed member
