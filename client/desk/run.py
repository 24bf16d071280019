"""Run a desk until interrupted: what ``docket desk`` and ``docket demo --desk`` call."""

from __future__ import annotations

import asyncio
import contextlib
import webbrowser
from collections.abc import Callable, Sequence

from client.api import DocketClient
from client.desk.app import Desk, Running, start


async def open_desk(client: DocketClient, *, port: int = 0) -> tuple[Desk, Running]:
    """Start a desk over ``client`` (whose home is unlocked by the caller)."""
    # Unlock the keys now, at the terminal: a prompt in the middle of a page would stall
    # every page.  The keys then stay in this process's memory only, as for any command.
    _ = client.keys
    await client.sync()
    desk = Desk(client=client)
    return desk, await start(desk, port=port)


async def serve(
    clients: Sequence[tuple[str, DocketClient]],
    *,
    browser: bool = True,
    say: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
) -> None:
    """Open one desk per client, print (and open) each launch URL, wait until ``stop``
    is set or the process is interrupted, then close everything."""
    running: list[Running] = []
    try:
        for label, client in clients:
            _, r = await open_desk(client)
            running.append(r)
            say(f"Docket Desk for {label}: {r.launch}")
            if browser:
                with contextlib.suppress(Exception):
                    webbrowser.open(r.launch)
        say("Keep this running while you use the desk; press Ctrl-C to stop it.")
        await (stop or asyncio.Event()).wait()
    finally:
        for r in running:
            await r.runner.cleanup()
