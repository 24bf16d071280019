"""Wakes long-polls and WebSockets after each commit, per device, and feeds WebSockets
the committed notices themselves.

Subscribe before querying, then wait: a commit that lands between the query and the
wait has already set the event, so no notice is ever missed.

A WebSocket pusher subscribes a :class:`Feed` instead: after each commit the sequencer
hands every notice (log index, kind, addressed devices, and for a small draft its
inline ``{"ciphertext", "header", "keys"}`` object) to :meth:`Notifier.publish`, which
appends the ready-made notice text to the feed of every addressed device.  The pusher
then sends from memory instead of querying the inbox table once per commit per device.
A feed that falls more than :data:`FEED_MAX` notices behind drops them and is marked
overflowed; its pusher then catches up from the database as on connect.

The inline objects of recent drafts are also kept (:meth:`Notifier.inline`, at most
:data:`INLINE_CACHE` drafts) for long-polls and for pushers catching up.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

FEED_MAX = 2048
"""Notices a feed may hold before its pusher must catch up from the database."""
INLINE_CACHE = 4096
"""Recent drafts whose inline object is kept for long-polls and catching-up pushers."""


@dataclass(frozen=True, slots=True)
class Notice:
    """One committed entry to announce: to ``devices``, or to everyone if ``broadcast``.

    ``inline`` is the canonical JSON object ``{"ciphertext", "header", "keys"}`` of a
    small draft (sent to recipients other than its ``sender``), else ``None``.
    """

    index: int
    kind: str
    devices: tuple[bytes, ...]
    broadcast: bool = False
    inline: bytes | None = None
    sender: bytes | None = None


def notice_text(index: int, kind: str, inline: bytes | None = None) -> str:
    """The canonical JSON notice ``{["draft",] "index", "kind"}`` (keys sorted)."""
    if inline is None:
        return f'{{"index":{index},"kind":"{kind}"}}'
    return f'{{"draft":{inline.decode()},"index":{index},"kind":"{kind}"}}'


@dataclass(slots=True, eq=False)
class Feed:
    """Notice texts committed for one device since it subscribed, in log order."""

    inline: bool
    event: asyncio.Event = field(default_factory=asyncio.Event)
    items: deque[tuple[int, str]] = field(default_factory=deque)
    overflowed: bool = False

    def reset(self) -> None:
        """Forget what is queued (the pusher is about to read the database)."""
        self.items.clear()
        self.overflowed = False


class Notifier:
    """Per-device wake-ups for long-polls and WebSockets."""

    def __init__(self) -> None:
        self._by_device: dict[bytes, set[asyncio.Event]] = {}
        self._feeds: dict[bytes, set[Feed]] = {}
        self._inline: OrderedDict[int, tuple[bytes, bytes | None]] = OrderedDict()
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

    @contextmanager
    def feed(self, device: bytes, *, inline: bool) -> Iterator[Feed]:
        """A :class:`Feed` of the notices committed for ``device`` from now on."""
        feed = Feed(inline=inline)
        if self._closed:
            feed.event.set()
        self._feeds.setdefault(device, set()).add(feed)
        try:
            yield feed
        finally:
            feeds = self._feeds.get(device)
            if feeds is not None:
                feeds.discard(feed)
                if not feeds:
                    del self._feeds[device]

    def inline(self, index: int, device: bytes) -> bytes | None:
        """The inline object of the recent draft at ``index`` for recipient ``device``."""
        cached = self._inline.get(index)
        if cached is None or cached[1] == device:
            return None
        return cached[0]

    def publish(
        self, devices: Iterable[bytes], *, everyone: bool = False, notices: Sequence[Notice] = ()
    ) -> None:
        """Wake the subscribers of ``devices`` (of every device if ``everyone``) and
        append ``notices`` to the feeds of the devices they are addressed to."""
        if everyone:
            for waiters in self._by_device.values():
                for event in waiters:
                    event.set()
        else:
            for device in devices:
                for event in self._by_device.get(device, ()):
                    event.set()
        for notice in notices:
            self._deliver(notice)

    def _deliver(self, notice: Notice) -> None:
        if notice.inline is not None:
            self._inline[notice.index] = (notice.inline, notice.sender)
            while len(self._inline) > INLINE_CACHE:
                self._inline.popitem(last=False)
        if not self._feeds:
            return
        plain = notice_text(notice.index, notice.kind)
        rich = plain if notice.inline is None else None
        targets: Iterable[tuple[bytes, set[Feed]]]
        if notice.broadcast:
            targets = self._feeds.items()
        else:
            targets = ((d, self._feeds[d]) for d in notice.devices if d in self._feeds)
        for device, feeds in targets:
            for feed in feeds:
                text = plain
                if feed.inline and notice.inline is not None and device != notice.sender:
                    if rich is None:
                        rich = notice_text(notice.index, notice.kind, notice.inline)
                    text = rich
                if len(feed.items) >= FEED_MAX:
                    feed.items.clear()
                    feed.overflowed = True
                elif not feed.overflowed:
                    feed.items.append((notice.index, text))
                feed.event.set()

    def close(self) -> None:
        """Wake everybody for good (shutdown): waiters return what they have."""
        self._closed = True
        self.publish((), everyone=True)
        for feeds in self._feeds.values():
            for feed in feeds:
                feed.event.set()

    @property
    def subscribers(self) -> int:
        """Number of waiting long-polls and WebSockets."""
        return sum(len(w) for w in self._by_device.values()) + sum(
            len(f) for f in self._feeds.values()
        )
