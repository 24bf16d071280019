"""Live updates: the follower that keeps the desk's view current, and the hub that tells
the open pages over server-sent events.

The follower does what ``docket watch`` does (:meth:`client.drafts.Drafts.watch`): wait
for the server to announce something past the verified log (WebSocket, long-poll
fallback), then verify it through the inbox, which also sends our receipts.  Each
change is published as one SSE event naming what changed; the page then fetches the
fragments it shows again (see ``static/desk.js``).  Events carry no plaintext.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from client.errors import Alarm, ClientError

if TYPE_CHECKING:
    from client.desk.app import Desk

QUEUE = 64  # events a slow page may fall behind by before it is dropped
NOTICE_WAIT = 5.0  # seconds per wait for the server's announcement
RETRY = 2.0  # seconds to wait after a network failure or an alarm


class Hub:
    """The subscribers (one queue per open event stream) and a change counter."""

    def __init__(self) -> None:
        self.version = 0
        self._queues: set[asyncio.Queue[str | None]] = set()

    def subscribe(self) -> asyncio.Queue[str | None]:
        queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str | None]) -> None:
        self._queues.discard(queue)

    def publish(self, kind: str) -> None:
        """Tell every open page that ``kind`` changed (a full queue drops its page)."""
        self.version += 1
        for queue in list(self._queues):
            try:
                queue.put_nowait(kind)
            except asyncio.QueueFull:
                self._queues.discard(queue)

    def close(self) -> None:
        for queue in list(self._queues):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        self._queues.clear()


async def follow(desk: Desk) -> None:
    """Follow the server until cancelled, publishing every verified change."""
    client = desk.client
    while True:
        try:
            await client.drafts._wait_notice(NOTICE_WAIT)
            async with desk.lock:
                before = (client.log.size, len(client.state.alarms()))
                await client.inbox()
                after = (client.log.size, len(client.state.alarms()))
            if after != before:
                desk.hub.publish("log")
            if desk.last_alarm is not None:
                desk.last_alarm = None  # the follower got through: the notice is over
                desk.hub.publish("alarm")
        except Alarm as exc:
            desk.note(exc)
            desk.hub.publish("alarm")
            await asyncio.sleep(RETRY)
        except (ClientError, OSError):
            await asyncio.sleep(RETRY)
