"""The relay: draft uploads, downloads for recipients, and the per-device inbox.

Upload (``POST /v1/drafts``), after the handler has read the meta part:

1. parse header and wrapped keys (:func:`protocol.envelope.decode_upload_meta`, which
   also checks the key map against the signed ``wrapped`` hash);
2. the caller must be the header's sender device;
3. idempotency: the same (sender, message id) with the same header bytes answers the
   original promise; with other bytes ``409 duplicate``;
4. cheap pre-checks before receiving megabytes: clock skew, size, and a dry run of the
   ledger that ignores what concurrent writes may still change (counters, lineage,
   roster head);
5. receive the ciphertext, checking length and hash: one of at most
   :data:`~server.services.blobs.DB_CIPHERTEXT_MAX` bytes is kept in memory and written
   with its entry (step 6), a larger one is streamed to a file, fsynced and renamed;
6. sequence the header (the ledger decides) and return the promise once durable.

The dry run of step 4 verifies the header's signature unless it stops before that
(a stale roster); when it did, the sequencer is told the key, so the signature is
verified once.  A small draft (wrapped keys and ciphertext at most :data:`INLINE_MAX`
bytes) also gets an inline notice object
``{"ciphertext", "header", "keys"}``: WebSocket notices (and long-polls that ask with
``inline=1``) carry it, so a recipient needs no further request to open the draft.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from protocol import crypto
from protocol.encoding import b64e, parse
from protocol.envelope import DraftHeader, decode_upload_meta
from protocol.errors import (
    CounterError,
    DuplicateError,
    LineageError,
    StaleRosterError,
    TooLargeError,
)
from protocol.grants import FAMILY as GRANTS
from protocol.grants import GrantState
from protocol.ledger import Ledger
from protocol.receipt import Promise
from server.clock import Clock, SteadyClock, check_time
from server.errors import ForbiddenError, NotFoundError, UnavailableError
from server.faults import crash_point
from server.services.auth import Caller
from server.services.blobs import DB_CIPHERTEXT_MAX, BlobStore
from server.services.notifier import Notifier, notice_text
from server.services.sequencer import Sequencer
from server.services.state import LogState
from server.storage.db import Store
from server.storage.log import promise_txn
from server.storage.relay import (
    StoredDraft,
    ciphertext_txn,
    draft_at_txn,
    draft_for_device_txn,
    inbox_txn,
)

WS_PAGE = 100
INLINE_MAX = 64 * 1024
"""Drafts whose wrapped keys and ciphertext together are at most this many bytes are
pushed inline (see the module docstring)."""
WS_RECHECK = 5.0
"""Seconds between checks of a quiet WebSocket (token expiry, roster removal)."""


class RelayService:
    """Draft uploads and downloads, the inbox, and WebSocket push."""

    def __init__(
        self,
        *,
        state: LogState,
        store: Store,
        sequencer: Sequencer,
        blobs: BlobStore,
        notifier: Notifier,
        clock: Clock,
        max_draft: int,
        max_skew: float,
        long_poll_max: float,
        ws_max_clients: int,
        ws_max_per_device: int,
    ) -> None:
        self._state = state
        self._store = store
        self._sequencer = sequencer
        self._blobs = blobs
        self._notifier = notifier
        # Record times are checked against the raw clock; expiry against the steady one.
        self._steady = clock
        self._clock = clock.wall if isinstance(clock, SteadyClock) else clock
        self._max_draft = max_draft
        self._max_skew_ms = int(max_skew * 1000)
        self._long_poll_max = long_poll_max
        self._ws_max = ws_max_clients
        self._ws_max_per_device = ws_max_per_device
        self._ws: dict[bytes, int] = defaultdict(int)

    # -- upload ---------------------------------------------------------------------------

    async def upload(self, caller: Caller, meta: bytes, chunks: AsyncIterator[bytes]) -> Promise:
        """Steps 1-6 of the module docstring."""
        header, _ = decode_upload_meta(meta)  # checks the key map against the header
        if not crypto.equal(header.sender, caller.device):
            raise ForbiddenError("a draft must be sent by the device that signed it")
        ledger = self._state.require_ledger()
        existing = await self._existing(ledger, header)
        if existing is not None:
            return existing
        self._state.require_writable()
        check_time(header.time, now=self._clock(), max_skew_ms=self._max_skew_ms, what="draft")
        if header.ct_len > self._max_draft:
            raise TooLargeError(f"draft ciphertext larger than {self._max_draft} bytes")
        verified_key: bytes | None = None
        try:
            ledger.check(header)
            verified_key = ledger.roster.device(header.sender)[1].sign_pk
        except (CounterError, LineageError, DuplicateError):
            # Raised after the signature check (see Ledger._check_draft); they may still
            # change with writes queued ahead of this one: the sequencer decides.
            verified_key = ledger.roster.device(header.sender)[1].sign_pk
        except StaleRosterError:
            pass  # raised before the signature check: the sequencer verifies it
        # decode_upload_meta accepted ``meta`` as canonical JSON, so it is exactly
        # {"header":<header.raw>,"keys":<canonical key map>}: the stored map is cut out.
        keys_json = meta[len(b'{"header":') + len(header.raw) + len(b',"keys":') : -1]
        in_database = header.ct_len <= DB_CIPHERTEXT_MAX
        small = in_database and len(keys_json) + header.ct_len <= INLINE_MAX
        if not in_database:
            self._blobs.hold(header.ct_hash)
        logged = False
        try:
            ciphertext = await self._blobs.receive(
                chunks,
                ct_hash=header.ct_hash,
                ct_len=header.ct_len,
                in_database=in_database,
                # A non-paper's header commits to no content (PROTOCOL.md §6): its
                # recipients check their tags; it is small enough to stay in the database.
                check_hash=header.mode is None,
            )
            crash_point("upload.blob")
            inline = None
            if small and ciphertext is not None:
                inline = (
                    b'{"ciphertext":"'
                    + b64e(ciphertext).encode("ascii")
                    + b'","header":'
                    + header.raw
                    + b',"keys":'
                    + keys_json
                    + b"}"
                )
            try:
                [promise] = await self._sequencer.submit(
                    [header],
                    draft_keys=keys_json,
                    ciphertext=ciphertext,
                    verified_key=verified_key,
                    inline=inline,
                )
            except DuplicateError:
                # The same upload may have raced us into the log.
                existing = await self._existing(self._state.require_ledger(), header)
                if existing is None:
                    raise
                promise = existing
            logged = True
            return promise
        finally:
            if not in_database:
                self._blobs.release(header.ct_hash)
                if not logged:
                    await self._blobs.discard(header.ct_hash)

    async def _existing(self, ledger: Ledger, header: DraftHeader) -> Promise | None:
        """The promise of an identical earlier upload; ``409`` for a conflicting one."""
        leaf = ledger.find_message(header.sender, header.msg)
        if leaf is None:
            return None
        if not crypto.equal(leaf, header.leaf):
            raise DuplicateError("this message id was already used for other bytes")
        index = ledger.drafts[leaf].index
        pending = self._sequencer.pending(index)
        if pending is not None:
            return (await asyncio.shield(pending))[0]
        raw = await self._store.read(promise_txn, index)
        if raw is None:
            raise UnavailableError("the original upload is not committed yet; retry")
        return Promise.from_json(parse(raw))

    # -- download -------------------------------------------------------------------------

    async def draft(self, caller: Caller, index: int) -> StoredDraft:
        """A draft addressed to the caller (404 for anyone else, as for no draft)."""
        ledger = self._state.require_ledger()
        stored = await self._store.read(draft_for_device_txn, index, caller.device)
        grants = ledger.act_state(GRANTS.name)
        if stored is None and isinstance(grants, GrantState) and grants.holds(caller.device, index):
            # Granted by a logged history grant: the log decides, not the server.
            stored = await self._store.read(draft_at_txn, index)
        if stored is None:
            raise NotFoundError("no such draft")
        return stored

    async def ciphertext(self, caller: Caller, index: int) -> bytes | Path:
        """The ciphertext of a draft addressed to the caller: the bytes of a small one
        (stored in the database), else the path of its file."""
        stored = await self.draft(caller, index)
        data = await self._store.read(ciphertext_txn, index)
        if data is not None:
            return data
        path = self._blobs.path(stored.ct_hash)
        if not path.is_file():
            raise UnavailableError("the ciphertext is missing from this server")
        return path

    # -- inbox ------------------------------------------------------------------------------

    def inline(self, caller: Caller, index: int, kind: str) -> bytes | None:
        """The inline object of a recent small draft addressed to the caller (``None``
        for the caller's own drafts, other kinds, or drafts no longer in memory)."""
        if kind != "draft":
            return None
        return self._notifier.inline(index, caller.device)

    async def inbox(
        self, caller: Caller, *, after: int, wait: float, limit: int
    ) -> tuple[list[tuple[int, str]], int]:
        """Notices after ``after`` (long-polling up to ``wait`` s); the next cursor."""
        self._state.require_ledger()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(wait, self._long_poll_max)
        with self._notifier.subscribe(caller.device) as event:
            while True:
                event.clear()
                below = self._state.committed_size
                items = await self._store.read(inbox_txn, caller.device, after, below, limit)
                remaining = deadline - loop.time()
                if items or remaining <= 0 or self._notifier.closed:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        await event.wait()
                except TimeoutError:
                    pass
        if len(items) == limit:
            return items, items[-1][0]
        return items, max(after, below - 1)

    # -- WebSocket push -----------------------------------------------------------------

    def ws_open(self, caller: Caller) -> None:
        """Count a new WebSocket, refusing past the global or per-device limit."""
        if sum(self._ws.values()) >= self._ws_max:
            raise UnavailableError("too many WebSocket connections")
        if self._ws[caller.device] >= self._ws_max_per_device:
            raise UnavailableError("too many WebSocket connections for this device")
        self._ws[caller.device] += 1

    def ws_closed(self, caller: Caller) -> None:
        """Forget a closed WebSocket."""
        self._ws[caller.device] -= 1
        if self._ws[caller.device] <= 0:
            del self._ws[caller.device]

    @property
    def ws_clients(self) -> int:
        """Open WebSockets."""
        return sum(self._ws.values())

    async def push(
        self,
        caller: Caller,
        *,
        after: int,
        expires: int,
        send: Callable[[str], Awaitable[None]],
        inline: bool = False,
        batch: bool = False,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        """Send ``{"index", "kind"}`` notices after ``after`` until the token expires
        (or ``alive()`` turns false: the token was revoked), the device leaves the
        roster or the server shuts down.

        With ``inline``, notices of small drafts addressed to the caller by another
        device also carry ``"draft": {"ciphertext", "header", "keys"}``.  The backlog
        comes from the inbox table; after that, notices come from the notifier's feed
        (filled at each commit), and from the table again if the feed overflowed.

        With ``batch``, each message is a JSON array of the notices ready at that moment
        (at most :data:`WS_PAGE`) instead of one notice: one frame per device per commit.
        """

        async def flush(texts: list[str]) -> None:
            if not texts:
                return
            if batch:
                await send("[" + ",".join(texts) + "]")
            else:
                for text in texts:
                    await send(text)
            texts.clear()

        cursor = after
        catching_up = True
        out: list[str] = []
        with self._notifier.feed(caller.device, inline=inline) as feed:
            while not self._notifier.closed and self._steady() < expires:
                if alive is not None and not alive():
                    return
                ledger = self._state.require_ledger()
                if caller.device not in ledger.roster.devices:
                    return
                feed.event.clear()
                if catching_up:
                    # Reset first: whatever commits after ``below`` is read lands in the
                    # feed; what commits before is in the table (overlap is skipped).
                    feed.reset()
                    below = self._state.committed_size
                    items = await self._store.read(inbox_txn, caller.device, cursor, below, WS_PAGE)
                    for index, kind in items:
                        extra = self.inline(caller, index, kind) if inline else None
                        out.append(notice_text(index, kind, extra))
                        cursor = index
                    await flush(out)
                    if len(items) == WS_PAGE:
                        continue
                    cursor = max(cursor, below - 1)
                    catching_up = False
                while feed.items:
                    index, text = feed.items.popleft()
                    if index > cursor:
                        out.append(text)
                        cursor = index
                        if len(out) >= WS_PAGE:
                            await flush(out)
                await flush(out)
                if feed.overflowed:
                    catching_up = True
                    continue
                wait = min(WS_RECHECK, max(0.0, (expires - self._steady()) / 1000))
                try:
                    async with asyncio.timeout(wait):
                        await feed.event.wait()
                except TimeoutError:
                    pass
