"""The desk's act forms (non-paper, initials, sealed proposals and calls, a head's
device revoke and grant) through aiohttp's test client, against a real server: each
succeeds for whom the library allows it and is refused, as a page with its code, for
a forged form, a member without the authority, or while an alarm is raised."""

from __future__ import annotations

import asyncio
import os

from aiohttp.test_utils import TestClient

from client.api import DocketClient
from client.errors import Alarm
from protocol.encoding import b64e
from protocol.envelope import NON_PAPER
from protocol.keys import DeviceKeys
from tests.adversarial.conftest import D2, World
from tests.desk.conftest import DeskFactory, base, launch

T = 60.0


async def post(tc: TestClient, path: str, data: dict[str, str]) -> tuple[int, str, str]:  # type: ignore[type-arg]
    """POST a form as the desk's own page would; (status, Location, error code and
    the refusal page's words)."""
    resp = await tc.post(path, data=data, headers={"Origin": base(tc)}, allow_redirects=False)
    text = await resp.text()
    error = resp.headers.get("X-Docket-Error", "")
    return resp.status, resp.headers.get("Location", ""), f"{error} {text}" if error else ""


async def test_compose_sends_a_non_paper(open_desk: DeskFactory) -> None:
    async with asyncio.timeout(T):
        desk, tc = await open_desk("n-adv")
        csrf = await launch(desk, tc)
        assert 'name="non_paper"' in await (await tc.get("/compose")).text()
        status, where, _ = await post(
            tc,
            "/compose",
            {"csrf": csrf, "channel": "plenary", "text": "off the record", "non_paper": "1"},
        )
        assert status == 303, where
        index = int(where.rsplit("/", 1)[1])
        assert desk.client.log.draft(index).mode == NON_PAPER


async def test_head_initials_and_withdraws_from_the_draft_view(open_desk: DeskFactory) -> None:
    async with asyncio.timeout(T):
        desk, tc = await open_desk("n-head")
        csrf = await launch(desk, tc)
        page = await (await tc.get(f"/draft/{D2}")).text()
        assert "<strong>tabled</strong>" in page and 'id="initial"' in page
        status, where, _ = await post(tc, f"/draft/{D2}/initial", {"csrf": csrf})
        assert status == 303, where
        page = await (await tc.get(f"/draft/{D2}")).text()
        assert "initialled 1 of 2" in page and 'id="withdraw"' in page
        status, _, _ = await post(tc, f"/draft/{D2}/initial", {"csrf": csrf, "withdraw": "1"})
        assert status == 303
        assert "<strong>tabled</strong>" in await (await tc.get(f"/draft/{D2}")).text()


async def test_forged_initial_without_csrf_is_refused(open_desk: DeskFactory) -> None:
    async with asyncio.timeout(T):
        desk, tc = await open_desk("n-head")
        await launch(desk, tc)
        size = desk.client.log.size
        status, _, code = await post(tc, f"/draft/{D2}/initial", {})
        assert status == 403 and code.startswith("bad_csrf")
        await desk.client.sync()
        assert desk.client.log.size == size


async def test_non_head_initial_is_refused(open_desk: DeskFactory) -> None:
    async with asyncio.timeout(T):
        desk, tc = await open_desk("n-adv")
        csrf = await launch(desk, tc)
        assert 'id="initial"' not in await (await tc.get(f"/draft/{D2}")).text()
        size = desk.client.log.size
        status, _, code = await post(tc, f"/draft/{D2}/initial", {"csrf": csrf})
        assert status == 400 and "not_entitled" in code and "Traceback" not in code, code
        await desk.client.sync()
        assert desk.client.log.size == size


async def test_every_act_is_refused_while_an_alarm_is_raised(open_desk: DeskFactory) -> None:
    async with asyncio.timeout(T):
        desk, tc = await open_desk("n-head")
        csrf = await launch(desk, tc)
        desk.client.core.record(Alarm("fork", "test: two logs"))
        size = desk.client.log.size
        device = b64e(DeviceKeys.generate(os.urandom).device_id)
        forms = {
            f"/draft/{D2}/initial": {},
            "/propose": {"call": "1", "text": "x"},
            "/calls/open": {"channel": "plenary", "delegation": "north", "minutes": "5"},
            "/calls/1/release": {},
            "/roster/revoke": {"member": "n-adv", "device": device, "since": "3"},
            "/roster/grant": {"member": "n-adv", "device": device, "channel": "plenary"},
        }
        for path, data in forms.items():
            status, _, words = await post(tc, path, {"csrf": csrf, **data})
            assert status == 400 and "blocked while an alarm is raised" in words, path
        assert desk.client.log.size == size
        assert 'id="initial"' not in await (await tc.get(f"/draft/{D2}")).text()


async def test_mediator_opens_a_call_a_delegation_proposes_and_it_is_released(
    open_desk: DeskFactory,
) -> None:
    async with asyncio.timeout(T):
        adv, adv_tc = await open_desk("n-adv")
        adv_csrf = await launch(adv, adv_tc)
        status, _, code = await post(
            adv_tc,
            "/calls/open",
            {"csrf": adv_csrf, "channel": "plenary", "delegation": "north", "minutes": "30"},
        )
        assert status == 400 and "mediator" in code, code  # only the mediator opens a call
        med, med_tc = await open_desk("med")
        med_csrf = await launch(med, med_tc)
        assert 'id="open-call"' in await (await med_tc.get("/compose")).text()
        status, where, _ = await post(
            med_tc,
            "/calls/open",
            {"csrf": med_csrf, "channel": "plenary", "delegation": "north", "minutes": "30"},
        )
        assert status == 303, where
        compose = await (await adv_tc.get("/compose")).text()
        assert "Call 1 on plenary" in compose and 'id="propose"' in compose
        status, where, _ = await post(
            adv_tc, "/propose", {"csrf": adv_csrf, "call": "1", "text": "we offer the bridge"}
        )
        assert status == 303, where
        index = int(where.rsplit("/", 1)[1])
        assert adv.client.negotiation.calls()[0].proposals["north"].index == index
        assert 'id="propose"' not in await (await adv_tc.get("/compose")).text()
        status, _, _ = await post(med_tc, "/calls/1/release", {"csrf": med_csrf})
        assert status == 303
        await med.client.sync()
        assert med.client.negotiation.calls()[0].released_at is not None


async def _new_device(world: World, head: DocketClient) -> DocketClient:
    """n-adv's new laptop, invited and enrolled by the head (fingerprint compared)."""
    invitation = await head.lifecycle.invite_device("n-adv")
    home = world.tmp / "homes" / "n-adv-laptop"
    keys = DeviceKeys.generate(os.urandom)
    DocketClient.init_home_state(home, keys.device_id, world.url)
    laptop = DocketClient(home, server=world.url, keys=keys, timeout=10.0)
    world.clients.append(laptop)
    await laptop.join(invitation.code, name="n-adv")
    await head.lifecycle.add_device("n-adv", expect_fingerprint=laptop.public().fingerprint)
    return laptop


async def test_head_grants_a_new_device_history_then_revokes_it(
    open_desk: DeskFactory, world: World
) -> None:
    async with asyncio.timeout(T):
        desk, tc = await open_desk("n-head")
        csrf = await launch(desk, tc)
        laptop = await _new_device(world, desk.client)
        device = b64e(laptop.device_id)
        roster = await (await tc.get("/roster")).text()
        assert laptop.public().fingerprint in roster and "Grant channel history" in roster
        assert b64e(desk.client.device_id) not in roster  # never the desk's own device
        status, where, _ = await post(
            tc,
            "/roster/grant",
            {"csrf": csrf, "member": "n-adv", "device": device, "channel": "plenary"},
        )
        assert status == 303, where
        assert "Granted 2 draft(s)" in await (await tc.get(where.split("#")[0])).text()
        since = str(desk.client.log.size - 1)
        status, _, _ = await post(
            tc,
            "/roster/revoke",
            {"csrf": csrf, "member": "n-adv", "device": device, "since": since},
        )
        assert status == 303
        assert laptop.device_id in desk.client.roster.revoked
        assert device not in await (await tc.get("/roster")).text()


async def test_non_head_revoke_is_refused(open_desk: DeskFactory, world: World) -> None:
    async with asyncio.timeout(T):
        desk, tc = await open_desk("s-adv")
        csrf = await launch(desk, tc)
        assert "Devices you answer for" not in await (await tc.get("/roster")).text()
        victim = world.person("n-adv").keys.device_id
        size = desk.client.log.size
        status, _, code = await post(
            tc,
            "/roster/revoke",
            {"csrf": csrf, "member": "n-adv", "device": b64e(victim), "since": "3"},
        )
        assert status == 400 and code.startswith("unauthorised_change"), code
        await desk.client.sync()
        assert desk.client.log.size == size and victim not in desk.client.roster.revoked
