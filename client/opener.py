"""``DraftOpener``: fetch, open and cache the drafts the verified log addresses to this
device.

Every draft is found in the verified log (not in the server's notices), fetched (or
taken from an inline notice, checked exactly as a GET's answer), opened with the
ledger's view of its sender and recipients, and its outcome cached in the local state:
the wrapped keys and ciphertext, still encrypted (plaintext is never written to disk),
and whether it opened or the error code it was rejected with.  A logged draft the
server refuses to deliver raises ``withheld``.  :mod:`client.drafts` builds the
user-facing operations on it; the rejected drafts' cached bytes are what a
misbehaviour bundle discloses (:mod:`client.evidence`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from client.core import ClientCore
from client.errors import (
    Alarm,
    ServerError,
    StateError,
    UsageError,
    VerificationError,
)
from client.logsync import LogSync
from client.state import OPENED, REJECTED
from protocol import crypto
from protocol.acts import Act
from protocol.encoding import Fields, JSONValue, b64d, b64e, canonical
from protocol.envelope import (
    MAX_PAYLOAD,
    OpenedDraft,
    Payload,
    keys_from_json,
    open_draft,
)
from protocol.errors import NotARecipientError, ProtocolError
from protocol.grants import FAMILY as GRANTS
from protocol.grants import GrantState, open_granted
from protocol.keys import DeviceId

INLINE_KEEP = 1024
"""At most this many inline drafts from notices are kept until they are opened."""

FetchDraft = Callable[[int], Awaitable[tuple[dict[DeviceId, bytes], bytes]]]
"""Wrapped keys and ciphertext of the draft at a log index, checked against the log."""
SendPendingReceipts = Callable[[], Awaitable[int]]
"""Sign and post the receipts still owed for opened or rejected drafts; how many."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """A draft addressed to us that failed to open or verify (a ``rejected`` receipt)."""

    index: int
    sender: str
    channel: str
    code: str

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        return {
            "channel": self.channel,
            "code": self.code,
            "index": self.index,
            "sender": self.sender,
        }


class DraftOpener:
    """Fetches the drafts the verified log addresses to this device, opens them with the
    ledger's view of sender and recipients, and caches the outcome in the local state."""

    def __init__(
        self,
        core: ClientCore,
        logsync: LogSync,
        *,
        send_receipts: SendPendingReceipts,
        fetch_draft: FetchDraft | None = None,
    ) -> None:
        self.core = core
        self.logsync = logsync
        self._send_receipts = send_receipts
        # Every draft fetch goes through this one callable; the facade routes it through
        # its own method, the seam tests use to tamper with what the server serves.
        self.fetch_draft: FetchDraft = fetch_draft or self.fetch_draft_from_server
        # Inline drafts from notices (index -> {"ciphertext", "header", "keys"}), used
        # once by fetch_draft_from_server instead of two GETs; checked exactly like a
        # GET's answer.
        self._inline: dict[int, JSONValue] = {}

    async def fetch_draft_from_server(self, index: int) -> tuple[dict[DeviceId, bytes], bytes]:
        """Wrapped keys and ciphertext of a draft addressed to us, checked against the
        header in the verified log (the server cannot swap the header)."""
        core = self.core
        log = core.log
        inline = self._from_notice(index)
        if inline is not None:
            return inline
        answer = await core.transport().get(f"/v1/drafts/{index}")
        try:
            f = Fields(answer, "draft")
            header_obj = f.raw("header")
            f.literal("index", index)
            keys = keys_from_json(f.raw("keys"))
            f.done()
        except ProtocolError as exc:
            raise core.record(Alarm.from_protocol(exc, index=index, what="draft")) from exc
        if canonical(header_obj) != log.entries[index]:
            raise core.record(
                Alarm(
                    "forged", "the server's draft header differs from the logged one", index=index
                )
            )
        ciphertext = await core.transport().request(
            "GET", f"/v1/drafts/{index}/ciphertext", raw=True
        )
        return keys, bytes(ciphertext)

    def _from_notice(self, index: int) -> tuple[dict[DeviceId, bytes], bytes] | None:
        """Keys and ciphertext a notice carried inline for ``index``, if its header is
        the logged one; ``None`` (fetch it instead) for anything else."""
        inline = self._inline.pop(index, None)
        if inline is None:
            return None
        try:
            f = Fields(inline, "draft")
            ciphertext = f.bytes("ciphertext", max_len=MAX_PAYLOAD + crypto.AEAD_OVERHEAD)
            header_obj = f.raw("header")
            keys = keys_from_json(f.raw("keys"))
            f.done()
        except ProtocolError:
            return None
        if canonical(header_obj) != self.core.log.entries[index]:
            return None
        return keys, ciphertext

    def keep_inline(self, notice: object) -> None:
        """Remember the inline draft of a ``{"draft", "index", "kind"}`` notice."""
        if isinstance(notice, dict) and isinstance(notice.get("index"), int):
            draft = notice.get("draft")
            if isinstance(draft, dict) and len(self._inline) < INLINE_KEEP:
                self._inline[notice["index"]] = draft

    def grant_of(self, index: int) -> int | None:
        """The log index of the history grant that gives this device the draft at
        ``index`` (:mod:`protocol.grants`), or ``None``."""
        grants = self.core.log.ledger.act_state(GRANTS.name)
        if not isinstance(grants, GrantState):
            return None
        reader = grants.readers.get(index, {}).get(self.core.device_id)
        return None if reader is None else reader.grant

    def open(self, index: int, keys: dict[DeviceId, bytes], ciphertext: bytes) -> Payload:
        """Open the draft at ``index`` as the ledger saw it (sender, recipients): with
        this device's current or former keys when it was a recipient, else through the
        history grant that gives it the draft."""
        return self.open_full(index, keys, ciphertext).payload

    def open_full(self, index: int, keys: dict[DeviceId, bytes], ciphertext: bytes) -> OpenedDraft:
        """:meth:`open`, with the content key (what a history grant re-wraps)."""
        core = self.core
        log = core.log
        header = log.draft(index)
        origin = log.origins[index]
        me = next(
            (k for d in header.recipients if (k := core.keys_for(d)) is not None),
            None,
        )
        if me is None:
            grant = self.grant_of(index)
            act = None if grant is None else log.parsed.get(grant)
            if not isinstance(act, Act):
                raise NotARecipientError("this device is not a recipient of the draft")
            return open_granted(header, ciphertext, act.body, index, core.keys)
        return open_draft(
            header,
            keys,
            ciphertext,
            me=me,
            talks=log.genesis.talks_id,
            sender=origin.device,
            recipients=header.recipients,
        )

    def cache(
        self,
        index: int,
        keys: Mapping[DeviceId, bytes],
        ciphertext: bytes,
        *,
        error: str | None = None,
    ) -> None:
        """Store a draft's wrapped keys and ciphertext, opened (no ``error``) or rejected
        with the error code (kept encrypted, as every recipient's copy).  A rejected
        draft keeps exactly the bytes :func:`~protocol.envelope.open_draft` refused: a
        misbehaviour bundle (:meth:`client.evidence.Evidence.disclose_misbehaviour`)
        discloses them."""
        self.core.state.put_draft(
            index,
            keys={b64e(k): b64e(v) for k, v in keys.items()},
            ciphertext=ciphertext,
            status=OPENED if error is None else REJECTED,
            error=error,
        )

    def _addressed(self, start: int = 0) -> list[int]:
        """Indices (from ``start``) of drafts addressed to this device by another one."""
        me = self.core.device_id
        addressed = {
            state.index
            for state in self.core.log.ledger.drafts.values()
            if state.index >= start and me in state.header.recipients and state.header.sender != me
        }
        grants = self.core.log.ledger.act_state(GRANTS.name)
        if isinstance(grants, GrantState):
            addressed.update(i for i in grants.granted_to(me) if i >= start)
        return sorted(addressed)

    async def process_new(self) -> tuple[list[Rejection], int, list[int]]:
        """Open every new draft addressed to us and send receipts in one batch; also
        return the drafts the server withheld."""
        core = self.core
        log = core.log
        rejections: list[Rejection] = []
        undelivered: list[int] = []
        # The cursor only skips work: the per-draft records decide what is done, so a
        # run interrupted half-way neither loses nor repeats a draft.
        cursor = int(core.state.get("inbox", 0))
        for index in self._addressed(cursor):
            if core.state.draft_record(index) is not None:
                continue
            try:
                keys, ciphertext = await self.fetch_draft(index)
            except ServerError as exc:
                # The verified log says this draft is addressed to us; a server that
                # answers "no such draft" (or "not yours") is withholding it.
                if exc.status not in (403, 404):
                    raise
                undelivered.append(index)
                self._withheld(index, exc)
                continue
            try:
                self.open(index, keys, ciphertext)
            except ProtocolError as exc:
                self.cache(index, keys, ciphertext, error=exc.code)
                core.state.record_alarm(Alarm.from_protocol(exc, index=index, what="draft"))
                header = log.draft(index)
                rejections.append(
                    Rejection(
                        index=index,
                        sender=log.origins[index].member,
                        channel=header.channel,
                        code=exc.code,
                    )
                )
                continue
            self.cache(index, keys, ciphertext)
        # Withheld drafts are asked for again next time.
        core.state.set("inbox", min([log.size, *undelivered]))
        sent = await self._send_receipts()
        return rejections, sent, undelivered

    def _withheld(self, index: int, exc: ServerError) -> None:
        """Record (once per draft) that the server refused a draft the log says is ours."""
        state = self.core.state
        if any(a.name == "withheld" and a.index == index for a in state.alarms()):
            return
        state.record_alarm(
            Alarm(
                "withheld",
                f"the log holds a draft for this device but the server answers "
                f"{exc.status} {exc.code}",
                index=index,
            )
        )

    def open_record(self, index: int) -> Payload:
        """Open the cached copy of the draft at ``index`` again."""
        record = self.core.state.draft_record(index)
        if record is None or record.keys is None or record.ciphertext is None:
            raise StateError(f"draft {index} is not in the local cache")
        try:
            keys = {DeviceId(b64d(k, length=16)): b64d(v) for k, v in record.keys.items()}
            return self.open(index, keys, record.ciphertext)
        except ProtocolError as exc:
            raise StateError(f"cached draft {index} no longer opens ({exc.code})") from exc

    async def ensure_opened(self, index: int, *, offline: bool = False) -> None:
        """Make sure the draft at ``index`` is fetched, verified and cached."""
        core = self.core
        if not offline:
            await self.logsync.sync()
        log = core.log
        header = log.draft(index)
        if not core.my_ids() & set(header.recipients) and self.grant_of(index) is None:
            raise UsageError(f"draft {index} is not addressed to this device")
        if core.state.draft_record(index) is None:
            if offline:
                raise StateError(f"draft {index} has not been fetched yet (run 'docket inbox')")
            if header.sender != core.device_id:
                _, _, undelivered = await self.process_new()
                if index in undelivered:
                    raise Alarm(
                        "withheld",
                        "the server refuses to deliver this draft addressed to you",
                        index=index,
                    )
            else:
                # Our own draft: we are a recipient too (every channel device is), but
                # it needs no receipt from us.
                keys, ciphertext = await self.fetch_draft(index)
                self.open(index, keys, ciphertext)
                self.cache(index, keys, ciphertext)
                core.state.mark_draft(index, receipt="own")
        record = core.state.draft_record(index)
        if record is None or record.status != OPENED:
            code = (record.error if record is not None else None) or "unavailable"
            raise VerificationError(f"draft {index} failed verification ({code})", code=code)
