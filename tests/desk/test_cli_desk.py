"""``docket desk --no-browser`` as a user runs it: a process that prints its launch URL,
serves the guarded desk on loopback, and stops on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys

import aiohttp

from tests.adversarial.conftest import World

T = 60.0
URL_RE = re.compile(rb"(http://127\.0\.0\.1:\d+)/launch\?token=([\w-]+)")


async def test_docket_desk_prints_a_launch_url_and_serves_only_with_it(world: World) -> None:
    async with asyncio.timeout(T):
        client = world.client("s-adv", keystore=True)
        await client.sync()
        await client.close()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "client.cli", "--home", str(client.home),
            "desk", "--no-browser",
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ),
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            match = None
            for _ in range(50):
                line = await asyncio.wait_for(proc.stdout.readline(), 30)
                match = URL_RE.search(line)
                if match or not line:
                    break
            assert match is not None
            base, token = match.group(1).decode(), match.group(2).decode()
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                async with http.get(base + "/") as resp:
                    assert resp.status == 403
                async with http.get(f"{base}/launch?token={token}") as resp:
                    assert resp.status == 200 and str(resp.url) == base + "/"
                    assert "Inbox" in await resp.text()
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
