"""``docket demo --desk``: after the demo's round, the desk as the mediator and as one
delegate, on the demo's still-running server, until interrupted."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from client.desk.run import serve

if TYPE_CHECKING:
    from client.demo import Demo

MEDIATOR = "envoy"
DELEGATE = "south-military"


def open_desks(
    *, browser: bool = True, say: Callable[[str], None] = print, stop: asyncio.Event | None = None
) -> Callable[[Demo], Awaitable[None]]:
    """The ``then`` hook for :func:`client.demo.run_demo`."""

    async def hook(demo: Demo) -> None:
        clients = [
            (f"{MEDIATOR} (the mediator)", demo.c(MEDIATOR)),
            (f"{DELEGATE} (a delegate)", demo.c(DELEGATE)),
        ]
        await serve(clients, browser=browser, say=say, stop=stop)

    return hook
