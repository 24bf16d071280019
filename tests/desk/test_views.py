"""The desk's pages through aiohttp's test client, against a real server."""

from __future__ import annotations

import asyncio

from client.cli.files import safe_file_name
from protocol.envelope import Payload
from tests.adversarial.conftest import D1, D2, World
from tests.desk.conftest import DeskFactory, base, launch

T = 40.0
SCRIPT = "<script>alert(1)</script>"


async def test_script_in_title_and_file_name_renders_inert(
    open_desk: DeskFactory, world: World
) -> None:
    async with asyncio.timeout(T):
        sender = world.client("n-adv")
        sent = await sender.send(
            "plenary",
            Payload(
                title=f"{SCRIPT}<img src=x onerror=alert(2)>",
                file_name=f'"><svg onload=alert(3)>{SCRIPT}.txt',
                media_type="text/plain",
                file_data=b"hello",
            ),
        )
        desk, tc = await open_desk("s-adv")
        await launch(desk, tc)
        for path in ("/", f"/draft/{sent.index}", "/board"):
            text = await (await tc.get(path)).text()
            assert SCRIPT not in text and "<img src=x" not in text and "<svg onload" not in text
            assert "&lt;script&gt;" in text, path


async def test_path_traversal_in_a_save_is_refused(open_desk: DeskFactory, world: World) -> None:
    async with asyncio.timeout(T):
        sender = world.client("n-adv")
        sent = await sender.send(
            "plenary",
            Payload(
                title="attachment",
                file_name="../../.bashrc",
                media_type="text/plain",
                file_data=b"echo owned",
            ),
        )
        desk, tc = await open_desk("s-adv")
        await launch(desk, tc)
        page = await (await tc.get(f"/draft/{sent.index}")).text()
        safe = safe_file_name("../../.bashrc")
        assert "/" not in safe and not safe.startswith(".")
        assert f"/save/{safe}" in page  # offered under the sanitised name only
        for name in ("..%2F..%2F.bashrc", "%2E%2E%2F%2E%2E%2F.bashrc", ".bashrc", "..", "x"):
            resp = await tc.get(f"/draft/{sent.index}/save/{name}")
            assert resp.status in (400, 404), name
            assert b"echo owned" not in await resp.read()
        resp = await tc.get(f"/draft/{sent.index}/save/{safe}")
        assert resp.status == 200 and await resp.read() == b"echo owned"
        disposition = resp.headers["Content-Disposition"]
        assert disposition.startswith("attachment;") and "/" not in disposition
        assert resp.headers["Cache-Control"] == "no-store"


async def test_inbox_draft_redline_and_receipts(open_desk: DeskFactory, world: World) -> None:
    async with asyncio.timeout(T):
        desk, tc = await open_desk("s-adv")
        await launch(desk, tc)
        inbox = await (await tc.get("/")).text()
        assert f"/draft/{D1}" in inbox and "signature" in inbox and "quorum" in inbox
        page = await (await tc.get(f"/draft/{D1}")).text()
        assert "Lineage" in page and "<svg" in page and f"index {D1}" in page
        assert "Receipts" in page and "proposal one" in page


async def test_send_new_version_and_redline_it(open_desk: DeskFactory, world: World) -> None:
    async with asyncio.timeout(T):
        desk, tc = await open_desk("n-adv")
        csrf = await launch(desk, tc)
        origin = {"Origin": base(tc)}
        resp = await tc.post(
            "/compose",
            data={"csrf": csrf, "channel": "plenary", "text": "the parties agree to talk"},
            headers=origin,
            allow_redirects=False,
        )
        assert resp.status == 303, await resp.text()
        first = int(resp.headers["Location"].rsplit("/", 1)[1])
        resp = await tc.post(
            "/compose",
            data={
                "csrf": csrf,
                "channel": "plenary",
                "parent": str(first),
                "text": "the parties agree to meet",
            },
            headers=origin,
            allow_redirects=False,
        )
        assert resp.status == 303, await resp.text()
        second = int(resp.headers["Location"].rsplit("/", 1)[1])
        page = await (await tc.get(f"/draft/{second}?against={first}")).text()
        assert "<del>talk</del>" in page and "<ins>meet</ins>" in page
        assert "v2" in page


async def test_mediator_acknowledges_from_the_board(open_desk: DeskFactory) -> None:
    async with asyncio.timeout(T):
        desk, tc = await open_desk("med")
        csrf = await launch(desk, tc)
        await tc.get("/")  # the inbox sends the received receipts
        grid = await (await tc.get("/board/grid")).text()
        assert f'id="ack-{D2}"' in grid
        resp = await tc.post(f"/ack/{D2}", headers={"Origin": base(tc), "X-Docket-CSRF": csrf})
        assert resp.status == 200, await resp.text()
        grid = await (await tc.get("/board/grid?channel=plenary")).text()
        assert f'id="ack-{D2}"' not in grid and "acknowledged" in grid


async def test_sending_is_blocked_while_an_alarm_is_raised(open_desk: DeskFactory) -> None:
    async with asyncio.timeout(T):
        from client.errors import Alarm

        desk, tc = await open_desk("n-adv")
        csrf = await launch(desk, tc)
        desk.client.core.record(Alarm("fork", "test: two logs"))
        for path in ("/", "/compose", "/health"):
            text = await (await tc.get(path)).text()
            assert 'role="alert"' in text and "fork" in text
        resp = await tc.post(
            "/compose",
            data={"csrf": csrf, "channel": "plenary", "text": "x"},
            headers={"Origin": base(tc)},
        )
        assert resp.status == 400
        assert "blocked" in await resp.text()
        resp = await tc.post(f"/ack/{D1}", headers={"Origin": base(tc), "X-Docket-CSRF": csrf})
        assert resp.status == 400
        assert "blocked" in await resp.text()


async def test_audit_runs_and_downloads_json(open_desk: DeskFactory) -> None:
    async with asyncio.timeout(T):
        desk, tc = await open_desk("aud")
        csrf = await launch(desk, tc)
        resp = await tc.post("/audit", data={"csrf": csrf}, headers={"Origin": base(tc)})
        assert resp.status == 200
        for _ in range(200):
            if not desk.audit.running:
                break
            await asyncio.sleep(0.05)
        assert desk.audit.report is not None, desk.audit.error
        resp = await tc.get("/audit/report.json")
        assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
        assert isinstance(await resp.json(), dict)


async def test_disclose_and_verify_evidence(open_desk: DeskFactory, world: World) -> None:
    async with asyncio.timeout(T):
        await world.client("med").sync()  # the mediator's witness cosigns the checkpoint
        desk, tc = await open_desk("s-adv")
        csrf = await launch(desk, tc)
        origin = {"Origin": base(tc)}
        resp = await tc.post(
            "/evidence/disclose", data={"csrf": csrf, "index": str(D1)}, headers=origin
        )
        assert resp.status == 200, await resp.text()
        bundle = await resp.read()
        import aiohttp

        form = aiohttp.FormData()
        form.add_field("csrf", csrf)
        form.add_field("bundle", bundle, filename="evidence.json")
        resp = await tc.post("/evidence/verify", data=form, headers=origin)
        text = await resp.text()
        assert resp.status == 200 and "Proven" in text, text[:500]
        form = aiohttp.FormData()
        form.add_field("csrf", csrf)
        form.add_field("bundle", bundle[:-20] + b"garbage", filename="evidence.json")
        resp = await tc.post("/evidence/verify", data=form, headers=origin)
        assert resp.status in (400, 409, 422) and "Proven" not in await resp.text()
        assert not desk.alarms()  # a bad bundle from someone else is no alarm about our log


async def test_unicode_names_are_isolated_against_bidi_spoofing(
    open_desk: DeskFactory, world: World
) -> None:
    """Right-to-left text in a title must not reorder the text around it.  (Bidi control
    characters themselves never get this far: senders refuse them and recipients reject
    a payload holding them, protocol.names.)"""
    async with asyncio.timeout(T):
        title = "\u0645\u0633\u0648\u062f\u0629 3 \u05d8\u05d9\u05d5\u05d8\u05d4 (v2)"
        sent = await world.client("n-adv").send("plenary", Payload(title=title, body="b"))
        desk, tc = await open_desk("s-adv")
        await launch(desk, tc)
        for path in ("/", f"/draft/{sent.index}"):
            text = await (await tc.get(path)).text()
            assert f'<bdi dir="auto">{title}</bdi>' in text, path


async def test_compose_a_file_and_filter_the_board(open_desk: DeskFactory) -> None:
    async with asyncio.timeout(T):
        import aiohttp

        desk, tc = await open_desk("n-adv")
        csrf = await launch(desk, tc)
        form = aiohttp.FormData()
        form.add_field("csrf", csrf)
        form.add_field("channel", "north-med")
        form.add_field("title", "")
        form.add_field("text", "")
        form.add_field("file", b"a,b\n1,2\n", filename="list.csv", content_type="text/csv")
        resp = await tc.post(
            "/compose", data=form, headers={"Origin": base(tc)}, allow_redirects=False
        )
        assert resp.status == 303, await resp.text()
        index = int(resp.headers["Location"].rsplit("/", 1)[1])
        page = await (await tc.get(f"/draft/{index}")).text()
        assert "list.csv" in page and "/save/list.csv" in page
        saved = await tc.get(f"/draft/{index}/save/list.csv")
        assert await saved.read() == b"a,b\n1,2\n"
        grid = await (await tc.get("/board/grid?channel=north-med")).text()
        assert f'href="/draft/{index}"' in grid and 'href="/draft/10"' not in grid
        grid = await (await tc.get("/board/grid?delegation=south")).text()
        assert f'href="/draft/{index}"' not in grid  # north-med has no south recipient


async def test_events_stream_announces_changes_without_content(
    open_desk: DeskFactory,
) -> None:
    async with asyncio.timeout(T):
        desk, tc = await open_desk("s-adv")
        await launch(desk, tc)
        resp = await tc.get("/events")
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers["Cache-Control"] == "no-store"
        assert (await resp.content.readline()).startswith(b"retry:")
        await resp.content.readline()
        desk.hub.publish("log")
        assert await resp.content.readline() == b"event: change\n"
        assert (await resp.content.readline()).startswith(b"data: log ")
        resp.close()
