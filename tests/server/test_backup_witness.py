"""A restored backup older than what the witnesses cosigned is refused writes.

Real ``docket-server`` processes and real witness daemons (the fixtures of
tests/server/test_witnessing.py): the backup is made with ``docket-server backup`` while
the server runs, the log then grows and is cosigned, and the backup is restored with
``docket-server restore``.  Without any high-water file the witnesses alone must keep
the restored server from promising old indices again or signing a forked checkpoint.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from protocol import crypto
from protocol.ledger import Ledger
from tests.client.serverproc import serve_existing
from tests.server.harness import Harness, HarnessError
from tests.server.test_witnessing import World, cosigned, talks, world

__all__ = ["world"]  # the fixture, used by name below

CLI_TIMEOUT = 120.0


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


async def test_stale_restore_is_refused_by_the_witnesses(
    world: World, rng: crypto.Rng, tmp_path: Path
) -> None:
    old = tmp_path / "old.tar"
    async with talks(world, rng) as h:
        await h.add_delegation("north", "n-head")
        await cosigned(h, world, 2)
        made = await asyncio.to_thread(_cli, "backup", "--data", world.init.data, "--out", old)
        assert made.returncode == 0, made.stderr
        await h.add_delegation("south", "s-head")
        await h.add_delegation("east", "e-head")
        await cosigned(h, world, 4)
    stale = tmp_path / "stale"
    restored = await asyncio.to_thread(_cli, "restore", old, "--data", stale)
    assert restored.returncode == 0, restored.stderr
    server = serve_existing(stale)
    try:
        async with Harness.attach(server.url, stale, world.init, rng) as r:
            assert h.genesis is not None
            r.people, r.genesis, r.ledger = h.people, h.genesis, Ledger(h.genesis)
            await r.sync()  # the restored log: genesis and the north delegation
            health = await r.ok("GET", "/healthz")
            assert isinstance(health, dict)
            assert health["read_only"] is True and health["code"] == "store_behind"
            reason = str(health["reason"])
            assert "witness" in reason and "4 entries" in reason and "only 2" in reason
            assert "docket-server restore" in reason and "docket-server retire" in reason
            # A new entry at index 2, already promised to the south delegation: refused.
            with pytest.raises(HarnessError) as refused:
                await r.add_delegation("west", "w-head")
            assert "503" in str(refused.value) and "store_behind" in str(refused.value)
    finally:
        server.stop()
    lines = [line for line in server.output if "going read-only" in line]
    assert len(lines) == 1 and "witness" in lines[0], server.output[-5:]
