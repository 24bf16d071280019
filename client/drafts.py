"""``Drafts``: sealing and sending drafts, opening the inbox, reading, history, watching.

5. **Drafts.**  :meth:`Drafts.send` seals to exactly the channel's devices in the
   verified roster.  :meth:`Drafts.inbox` opens every new draft addressed to this
   device, using the sender key and recipient set *from the ledger at the draft*, sends
   ``received`` (or ``rejected`` with the error code) receipts in one batch
   (:mod:`client.receipts`), and shows only drafts that verified and are covered by a
   verified checkpoint.  The drafts come from the verified log, not from the server's
   notices, so a logged draft the server will not deliver is noticed (``withheld``).

:class:`~client.opener.DraftOpener` fetches, opens and caches the drafts addressed to
this device; :class:`Drafts` builds the user-facing operations on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from client.core import ClientCore, RequireCurrent, Sent, now_ms, verified_promise
from client.errors import (
    Alarm,
    ClientError,
    NetworkError,
    ServerError,
    StateError,
    UsageError,
)
from client.logsync import LogSync
from client.opener import DraftOpener, Rejection
from client.state import OPENED
from protocol import merkle
from protocol.encoding import JSONValue, b64e
from protocol.envelope import (
    DraftHeader,
    Payload,
    encode_upload,
    seal,
)
from protocol.ledger import DraftState
from protocol.records import DraftId, MessageId


@dataclass(frozen=True, slots=True, kw_only=True)
class InboxItem:
    """A received draft that opened and verified."""

    index: int
    channel: str
    sender: str
    title: str
    draft: bytes
    version: int
    time: int
    read: bool
    acknowledged: bool
    file_name: str | None

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        return {
            "acknowledged": self.acknowledged,
            "channel": self.channel,
            "draft": b64e(self.draft),
            "file": self.file_name,
            "index": self.index,
            "read": self.read,
            "sender": self.sender,
            "time": self.time,
            "title": self.title,
            "version": self.version,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class InboxResult:
    """The verified inbox, the drafts rejected this time, receipts sent, and drafts the
    server withheld."""

    items: tuple[InboxItem, ...]
    rejected: tuple[Rejection, ...]
    receipts_sent: int
    undelivered: tuple[int, ...] = ()
    """Log indices of drafts addressed to us that the server refused to deliver (each
    raised the ``withheld`` alarm; they are asked for again next time)."""

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        return {
            "items": [i.to_json() for i in self.items],
            "receipts_sent": self.receipts_sent,
            "rejected": [r.to_json() for r in self.rejected],
            "undelivered": list(self.undelivered),
        }


def mode_name(mode: str | None) -> str:
    """How a draft's header mode is shown: ``attributable`` or ``non-paper``."""
    return "attributable" if mode is None else "non-paper"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadDraft:
    """An opened draft: its verified header facts and the payload."""

    index: int
    channel: str
    sender: str
    header: DraftHeader
    payload: Payload
    leaf: bytes

    def to_json(self, *, include_file: bool = False) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        p = self.payload
        out: dict[str, JSONValue] = {
            "body": p.body,
            "channel": self.channel,
            "draft": b64e(self.header.draft),
            "file": None,
            "index": self.index,
            "leaf": b64e(self.leaf),
            "parents": [b64e(x) for x in self.header.parents],
            "sender": self.sender,
            "time": self.header.time,
            "title": p.title,
            "version": self.header.version,
            "mode": mode_name(self.header.mode),
        }
        if p.file_data is not None:
            file: dict[str, JSONValue] = {
                "name": p.file_name,
                "size": len(p.file_data),
                "type": p.media_type,
            }
            if include_file:
                file["data"] = b64e(p.file_data)
            out["file"] = file
        elif p.annex is not None:
            out["file"] = {
                "annex": {"chunks": p.annex.chunks, "hash": b64e(p.annex.hash)},
                "name": p.file_name,
                "size": p.annex.length,
                "type": p.media_type,
            }
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryItem:
    """One version in a draft's lineage."""

    index: int
    version: int
    sender: str
    channel: str
    leaf: bytes
    parents: tuple[bytes, ...]
    time: int
    title: str | None
    compromised: bool = False
    """Signed after its device's declared compromise (docs/PROTOCOL.md section 5a)."""
    mode: str = "attributable"

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        return {
            "channel": self.channel,
            "compromised": self.compromised,
            "index": self.index,
            "mode": self.mode,
            "leaf": b64e(self.leaf),
            "parents": [b64e(p) for p in self.parents],
            "sender": self.sender,
            "time": self.time,
            "title": self.title,
            "version": self.version,
        }


class Drafts:
    """Sending, the inbox, reading, history and watching (step 5)."""

    def __init__(
        self,
        core: ClientCore,
        logsync: LogSync,
        opener: DraftOpener,
        *,
        require_current: RequireCurrent | None = None,
    ) -> None:
        self.core = core
        self.logsync = logsync
        self.opener = opener
        self._require_current = require_current or logsync.sync

    async def send(
        self,
        channel: str,
        payload: Payload,
        *,
        draft_id: bytes | None = None,
        parents: Sequence[bytes] = (),
        non_paper: bool = False,
    ) -> Sent:
        """Seal ``payload`` to every device of ``channel`` and log it (as a deniable
        non-paper with ``non_paper``: see :func:`protocol.envelope.seal`).

        A new draft gets a fresh draft id; a new version names its ``parents`` (leaf
        hashes of earlier versions) and, optionally, the ``draft_id`` they belong to.
        """
        core = self.core
        core.check_not_frozen()
        # Seal only on a view a fresh witness quorum vouches for (client.freshness): a
        # host withholding a removal must not get a content key wrapped for the removed.
        await self._require_current()
        me = core.me()
        roster = core.roster
        if channel not in roster.channels:
            raise UsageError(f"no channel {channel!r}")
        if not roster.is_channel_member(channel, me):
            raise UsageError(f"you are not a member of channel {channel!r}")
        draft, version, parent_list = self._lineage(channel, draft_id, parents)
        msg = MessageId(core.rng(16))
        for attempt in (0, 1):
            roster = core.roster
            counter = (
                max(core.log.ledger.counters.get(core.device_id, 0), core.state.get("counter", 0))
                + 1
            )
            sealed = seal(
                sender=core.keys,
                talks=roster.talks,
                channel=channel,
                counter=counter,
                msg=msg,
                draft=draft,
                version=version,
                parents=parent_list,
                roster=roster.head,
                recipients=roster.channel_devices(channel),
                payload=payload,
                time=now_ms(),
                rng=core.rng,
                non_paper=non_paper,
            )
            body = encode_upload(sealed)
            try:
                answer = await self._upload(body)
            except ServerError as exc:
                if exc.code in ("stale_roster", "bad_counter") and attempt == 0:
                    before = (roster.head, core.log.ledger.counters.get(core.device_id, 0))
                    await self._require_current()
                    after = (core.roster.head, core.log.ledger.counters.get(core.device_id, 0))
                    if after == before:
                        # The server's own signed log shows no newer roster (or counter):
                        # re-sealing would only hand it the same keys again, or new ones
                        # for a roster it made up.  Refuse, loudly, once.
                        raise core.record(
                            Alarm(
                                "stale_roster_claim",
                                f"the server answered {exc.code} but its signed log shows "
                                "no newer roster or counter; nothing was re-sent",
                            )
                        ) from exc
                    continue
                raise
            promise = verified_promise(answer, core.genesis(), sealed.header.leaf)
            self.logsync.keep_promise(promise)
            core.state.set("counter", counter)
            # Keep our own copy (encrypted, as every recipient's) so history and read
            # work for our own drafts without fetching them back.
            self.opener.cache(promise.index, sealed.keys, sealed.ciphertext)
            core.state.mark_draft(promise.index, receipt="own")
            await self.logsync.wait_for(promise.index)
            return Sent(
                index=promise.index,
                leaf=sealed.header.leaf,
                draft=draft,
                version=version,
                msg=msg,
            )
        raise ServerError(409, "stale_roster", "the roster kept changing")  # pragma: no cover

    async def _upload(self, body: bytes) -> Any:
        transport = self.core.transport()
        try:
            return await transport.request("POST", "/v1/drafts", data=body)
        except ServerError:
            raise
        except NetworkError:
            # The outcome is unknown: resending the very same bytes is idempotent (the
            # server answers with the original promise), so try once more.
            return await transport.request("POST", "/v1/drafts", data=body)

    def _lineage(
        self, channel: str, draft_id: bytes | None, parents: Sequence[bytes]
    ) -> tuple[DraftId, int, list[merkle.LeafHash]]:
        ledger = self.core.log.ledger
        if not parents:
            if draft_id is not None:
                raise UsageError("a new version needs at least one --parent")
            return DraftId(self.core.rng(16)), 1, []
        parent_states: list[DraftState] = []
        for parent in parents:
            state = ledger.drafts.get(merkle.LeafHash(bytes(parent)))
            if state is None:
                raise UsageError(f"parent {b64e(parent)} is not a draft in the verified log")
            parent_states.append(state)
        ids = {s.header.draft for s in parent_states}
        if len(ids) != 1:
            raise UsageError("all parents must be versions of the same draft")
        (found_id,) = ids
        if draft_id is not None and draft_id != found_id:
            raise UsageError("--draft does not match the parents' draft id")
        if any(s.header.channel != channel for s in parent_states):
            raise UsageError("a new version must go to the same channel as its parents")
        version = max(s.header.version for s in parent_states) + 1
        return (
            DraftId(found_id),
            version,
            [merkle.LeafHash(bytes(p)) for p in parents],
        )

    async def inbox(self) -> InboxResult:
        """Sync, open new drafts, send receipts; return the verified inbox."""
        core = self.core
        await self.logsync.sync()
        core.me()
        rejected, sent, undelivered = await self.opener.process_new()
        log = core.log
        me = core.device_id
        items = []
        for record in core.state.draft_records():
            if record.status != OPENED or record.index >= log.size or record.receipt == "own":
                continue
            payload = self.opener.open_record(record.index)
            header = log.draft(record.index)
            state = log.ledger.drafts[header.leaf]
            items.append(
                InboxItem(
                    index=record.index,
                    channel=header.channel,
                    sender=log.origins[record.index].member,
                    title=payload.title,
                    draft=header.draft,
                    version=header.version,
                    time=header.time,
                    read=record.read,
                    acknowledged=me in state.acknowledged,
                    file_name=payload.file_name,
                )
            )
        return InboxResult(
            items=tuple(items),
            rejected=tuple(rejected),
            receipts_sent=sent,
            undelivered=tuple(undelivered),
        )

    async def read(self, index: int, *, offline: bool = False) -> ReadDraft:
        """Open a verified draft addressed to us and mark it read."""
        await self.opener.ensure_opened(index, offline=offline)
        log = self.core.log
        payload = self.opener.open_record(index)
        self.core.state.mark_draft(index, read=True)
        header = log.draft(index)
        return ReadDraft(
            index=index,
            channel=header.channel,
            sender=log.origins[index].member,
            header=header,
            payload=payload,
            leaf=header.leaf,
        )

    async def history(self, draft_id: bytes, *, fetch: bool = True) -> list[HistoryItem]:
        """Every logged version of a draft, oldest first, with titles where this device
        can open them (``fetch`` opens versions addressed to us not yet fetched)."""
        core = self.core
        log = core.log
        versions = log.ledger.lineage(draft_id)
        if not versions:
            raise UsageError(f"no draft {b64e(draft_id)} in the verified log")
        out = []
        for state in versions:
            title = None
            addressed = bool(core.my_ids() & set(state.header.recipients))
            if addressed and fetch and core.state.draft_record(state.index) is None:
                with contextlib.suppress(ClientError):
                    await self.opener.ensure_opened(state.index)
            record = core.state.draft_record(state.index)
            if record is not None and record.status == OPENED:
                with contextlib.suppress(StateError):
                    title = self.opener.open_record(state.index).title
            out.append(
                HistoryItem(
                    index=state.index,
                    version=state.header.version,
                    sender=state.sender_member,
                    channel=state.header.channel,
                    leaf=state.header.leaf,
                    parents=tuple(state.header.parents),
                    time=state.header.time,
                    title=title,
                    compromised=log.ledger.roster.compromised(state.header.sender, state.index)
                    is not None,
                    mode=mode_name(state.header.mode),
                )
            )
        return out

    async def watch(
        self, *, count: int | None = None, timeout: float | None = None
    ) -> AsyncIterator[InboxItem]:
        """Yield newly verified drafts as the server announces them (WebSocket push,
        long-poll fallback), until ``count`` drafts arrived or ``timeout`` passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = {i.index for i in (await self.inbox()).items}
        delivered = 0

        def remaining() -> float | None:
            """Seconds left before the deadline (None: no deadline)."""
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        while count is None or delivered < count:
            left = remaining()
            if left is not None and left <= 0:
                return
            await self._wait_notice(left)
            for item in (await self.inbox()).items:
                if item.index not in seen:
                    seen.add(item.index)
                    delivered += 1
                    yield item
                    if count is not None and delivered >= count:
                        return

    async def _wait_notice(self, timeout: float | None) -> None:
        """Wait until the server announces something after our verified log, or time
        runs out.  WebSocket first; long-poll ``/v1/inbox`` if the socket fails."""
        after = self.core.log.size - 1
        wait = 25.0 if timeout is None else min(timeout, 25.0)
        try:
            ws = await self.core.transport().websocket("/v1/ws", after=after, inline=1)
        except (NetworkError, ServerError):
            ws = None
        if ws is not None:
            try:
                msg = await asyncio.wait_for(ws.receive(), timeout=wait + 0.1)
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    # Closed or failed: pause so a server that keeps closing the socket
                    # is not hammered with reconnects.
                    await asyncio.sleep(1.0)
                else:
                    with contextlib.suppress(ValueError):
                        self.opener.keep_inline(json.loads(msg.data))
            except TimeoutError:
                pass
            finally:
                await ws.close()
            return
        answer = await self.core.transport().request(
            "GET",
            "/v1/inbox",
            params={"after": after, "wait": max(0, int(wait)), "limit": 1, "inline": 1},
            timeout=wait + 10,
        )
        if isinstance(answer, dict) and isinstance(answer.get("items"), list):
            for item in answer["items"]:
                self.opener.keep_inline(item)
