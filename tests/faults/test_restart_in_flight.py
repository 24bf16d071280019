"""A graceful restart while clients hold WebSockets and uploads are in flight.

* The server is stopped with SIGTERM while three devices hold WebSockets and one upload
  has sent half its body: it exits within ``shutdown_timeout`` (2 s here) plus start-up
  slack, the WebSockets are closed, and the half upload is refused cleanly (a closed
  connection or a problem+json answer, never a 500, never a logged entry).
* After the restart each client reconnects with ``after`` = the last index it saw and
  verified; the union of notices before and after is exactly the device's inbox (every
  index once: nothing missed, nothing twice).
* The cut upload, sent again whole, is accepted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from protocol.envelope import encode_upload
from tests.faults.counters import bump
from tests.faults.procs import serving
from tests.faults.workload import Template, build_template, login_all
from tests.server.harness import Harness

WATCHERS = ("s-adv", "n-head", "obs")
SHUTDOWN_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return build_template(tmp_path_factory.mktemp("restart-template"))


async def _watch(h: Harness, name: str, after: int, seen: list[int], ready: asyncio.Event) -> None:
    token = await h.token(h.people[name])
    async with h.session.ws_connect(
        f"{h.base}/v1/ws?after={after}", headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        ready.set()
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            notice = json.loads(msg.data)
            # A client verifies what it is told before advancing its cursor.
            assert isinstance(notice["index"], int) and notice["index"] > after
            seen.append(notice["index"])


async def _inbox(h: Harness, name: str, after: int) -> list[int]:
    got = await h.ok("GET", f"/v1/inbox?after={after}&limit=1000", person=h.people[name])
    return [int(i["index"]) for i in got["items"]]


async def test_restart_with_websockets_and_uploads_in_flight(
    template: Template, tmp_path: Path
) -> None:
    data = template.clone(tmp_path / "data")
    seen: dict[str, list[int]] = {name: [] for name in WATCHERS}
    start_after = template.ledger().size - 1
    gate = asyncio.Event()
    sender = None
    async with serving(data) as served, template.attach(served.url, data, "restart-1") as h:
        await login_all(h)
        sender = h.people["n-adv"]
        readies = [asyncio.Event() for _ in WATCHERS]
        watchers = [
            asyncio.create_task(_watch(h, name, start_after, seen[name], ready))
            for name, ready in zip(WATCHERS, readies, strict=True)
        ]
        async with asyncio.timeout(10):
            for ready in readies:
                await ready.wait()
        for i in range(5):
            await h.send(sender, h.seal(sender, "plenary", f"before the restart {i}"))
        cut = h.seal(sender, "plenary", "cut in half")
        body = encode_upload(cut)

        async def half() -> AsyncIterator[bytes]:
            yield body[: len(body) // 2]
            await gate.wait()  # never sends the rest: the restart cuts it
            yield body[len(body) // 2 :]

        token = await h.token(sender)
        upload = asyncio.create_task(
            h.session.post(
                h.base + "/v1/drafts",
                data=half(),
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/octet-stream",
                },
            )
        )
        await asyncio.sleep(0.3)  # the half body is at the server
        async with asyncio.timeout(10):
            while any(len(seen[n]) < 5 for n in ("s-adv", "n-head")):
                await asyncio.sleep(0.02)
        started = time.monotonic()
        assert await served.stop() == 0  # SIGTERM: a graceful shutdown
        drained = time.monotonic() - started
        bump("faults injected")
        assert drained < SHUTDOWN_TIMEOUT + 5.0, drained
        async with asyncio.timeout(10):
            await asyncio.gather(*watchers, return_exceptions=True)
        try:
            async with asyncio.timeout(10):
                resp = await upload
            status = resp.status
            assert status != 500 and status != 200, status
            assert resp.content_type == "application/problem+json"
        except (aiohttp.ClientError, ConnectionError):
            pass  # the connection was closed under it: also a clean refusal
        gate.set()
        logged_before = h.require_ledger().size
    # The same data directory, a new process and port; the clients resume.
    async with serving(data) as served:
        async with template.attach(served.url, data, "restart-2") as h:
            h.tokens.clear()
            await h.sync()
            assert h.require_ledger().size == logged_before  # the cut upload left nothing
            assert sender is not None
            h.people["n-adv"].counter = h.require_ledger().counters.get(sender.device, 0)
            readies = [asyncio.Event() for _ in WATCHERS]
            resumed = {name: seen[name][-1] if seen[name] else start_after for name in WATCHERS}
            watchers = [
                asyncio.create_task(_watch(h, name, resumed[name], seen[name], ready))
                for name, ready in zip(WATCHERS, readies, strict=True)
            ]
            async with asyncio.timeout(10):
                for ready in readies:
                    await ready.wait()
            resp = await h.post_draft(h.people["n-adv"], cut)  # the cut upload, whole
            assert resp.status == 200, await resp.text()
            await h.sync()
            h.people["n-adv"].counter = h.require_ledger().counters[sender.device]
            for i in range(3):
                sealed = h.seal(h.people["n-adv"], "plenary", f"after the restart {i}")
                await h.send(h.people["n-adv"], sealed)
            expected = {name: await _inbox(h, name, start_after) for name in WATCHERS}
            async with asyncio.timeout(10):
                while any(len(seen[n]) < len(expected[n]) for n in WATCHERS):
                    await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # nothing more may arrive
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            for name in WATCHERS:
                assert seen[name] == expected[name], name  # none missed, none twice, in order
                bump("items checked", len(seen[name]))
        assert await served.stop() == 0
