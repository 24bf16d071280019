"""Wakes long-polls and WebSockets after each commit, per device.

Subscribe before querying, then wait: a commit that lands between the query and the
wait has already set the event, so no notice is ever missed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


class Notifier:
    """Per-device wake-ups for long-polls and WebSockets."""

    def __init__(self) -> None:
        self._by_device: dict[bytes, set[asyncio.Event]] = {}
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether the server is shutting down."""
        return self._closed

    @contextmanager
    def subscribe(self, device: bytes) -> Iterator[asyncio.Event]:
        """An event set whenever something for ``device`` is committed (or on close)."""
        event = asyncio.Event()
        if self._closed:
            event.set()
        self._by_device.setdefault(device, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._by_device.get(device)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._by_device[device]

    def publish(self, devices: Iterable[bytes], *, everyone: bool = False) -> None:
        """Wake the subscribers of ``devices`` (of every device if ``everyone``)."""
        if everyone:
            for waiters in self._by_device.values():
                for event in waiters:
                    event.set()
            return
        for device in devices:
            for event in self._by_device.get(device, ()):
                event.set()

    def close(self) -> None:
        """Wake everybody for good (shutdown): waiters return what they have."""
        self._closed = True
        self.publish((), everyone=True)

    @property
    def subscribers(self) -> int:
        """Number of waiting long-polls and WebSockets."""
        return sum(len(w) for w in self._by_device.values())
