"""``Receipts``: signing and posting receipts, and each draft's receipt status.

Every draft this device opened (or rejected) owes one ``received`` (or ``rejected``,
with the error code) receipt, posted in batches; ``acknowledged`` follows only once our
``received`` one is logged.  Status is read from the verified log alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from client.acts import Acts
from client.core import (
    ClientCore,
    EnsureOpened,
    RequireCurrent,
    Sent,
    now_ms,
    verified_promise,
)
from client.errors import NetworkError, ServerError, UsageError
from client.logsync import LogSync
from client.state import OPENED
from protocol.encoding import JSONValue, b64e
from protocol.grants import FAMILY as GRANTS
from protocol.grants import RECEIPT_KIND, GrantState, grant_receipt_body, readers_of
from protocol.keys import DeviceId
from protocol.receipt import ACKNOWLEDGED, RECEIVED, Promise, Receipt, make_receipt
from protocol.roster import Roster

RECEIPT_BATCH = 256

PostReceipts = Callable[[Sequence[Receipt]], Awaitable[list[Promise]]]
"""Post receipts and return the server's verified (and kept) promise for each."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptLine:
    """One recipient device's receipt state for a draft."""

    member: str
    device: bytes
    received: int | None
    acknowledged: int | None
    rejected: str | None
    compromised: bool = False
    """A receipt of this line was signed after its device's declared compromise."""
    grant: int | None = None
    """A reader through the history grant at this index (not a signed recipient)."""

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        return {
            "acknowledged": self.acknowledged,
            "compromised": self.compromised,
            "device": b64e(self.device),
            "grant": self.grant,
            "member": self.member,
            "received": self.received,
            "rejected": self.rejected,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptStatus:
    """Receipts for one draft, verified from the log."""

    index: int
    sender: str
    channel: str
    lines: tuple[ReceiptLine, ...]
    sender_compromised: bool = False
    """The draft was signed after its device's declared compromise."""
    readers: tuple[ReceiptLine, ...] = ()
    """Devices that read it through a history grant."""

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        return {
            "channel": self.channel,
            "index": self.index,
            "readers": [line.to_json() for line in self.readers],
            "recipients": [line.to_json() for line in self.lines],
            "sender": self.sender,
            "sender_compromised": self.sender_compromised,
        }


class Receipts:
    """Receipts this device owes and signs, and the receipts others logged."""

    def __init__(
        self,
        core: ClientCore,
        logsync: LogSync,
        *,
        ensure_opened: EnsureOpened,
        post: PostReceipts | None = None,
        require_current: RequireCurrent | None = None,
        acts: Acts | None = None,
    ) -> None:
        self.core = core
        self._acts = acts
        self.logsync = logsync
        self._ensure_opened = ensure_opened
        self._require_current = require_current
        # Every receipt post goes through this one callable; the facade routes it
        # through its own method, the seam the crash tests patch to die mid-run.
        self.post: PostReceipts = post or self.post_to_server

    async def send_pending(self, *, catch_up: bool = True) -> int:
        """Sign and post every receipt still owed; return how many were sent."""
        core = self.core
        if core.state.get("frozen"):
            return 0  # sign nothing on a history we may not share with others
        log = core.log
        me = core.device_id
        receipts: list[tuple[int, Receipt, str]] = []
        granted: list[tuple[int, str, str | None]] = []
        for record in core.state.draft_records():
            if record.receipt is not None:
                continue
            state = log.ledger.drafts[log.leaf(record.index)]
            if me in state.received or me in state.rejected:
                core.state.mark_draft(record.index, receipt=RECEIVED)
                continue
            kind = RECEIVED if record.status == OPENED else "rejected"
            if me not in state.header.recipients:
                granted.append((record.index, kind, record.error))
                continue
            receipt = make_receipt(
                device=core.keys,
                header=state.header,
                index=record.index,
                kind=kind,
                time=now_ms(),
                reason=record.error if kind == "rejected" else None,
            )
            receipts.append((record.index, receipt, kind))
        sent_granted = await self._send_grant_receipts(granted)
        if receipts and self._require_current is not None:
            # Sign nothing on a view no fresh quorum vouches for (client.freshness); the
            # receipts stay owed and go out on the next run.
            await self._require_current()
        last = -1
        for start in range(0, len(receipts), RECEIPT_BATCH):
            batch = receipts[start : start + RECEIPT_BATCH]
            try:
                promises = await self.post([r for _, r, _ in batch])
            except ServerError as exc:
                if exc.code != "duplicate" or not catch_up:
                    raise
                # A run that died after sending receipts (before noting them) left them
                # logged past the checkpoint we verified: once the next checkpoint shows
                # them, send only what is still missing.
                await self.logsync.wait_for(core.log.size)
                return start + await self.send_pending(catch_up=False)
            last = max(last, *(p.index for p in promises))
            for index, _, kind in batch:
                core.state.mark_draft(index, receipt=kind)
        if receipts:
            # Our receipts are part of what we verify: wait until the log shows them.
            await self.logsync.wait_for(last)
        return len(receipts) + sent_granted

    async def post_to_server(self, receipts: Sequence[Receipt]) -> list[Promise]:
        """``POST /v1/receipts``; verify and keep the promise for each receipt."""
        core = self.core
        answer = await core.transport().post(
            "/v1/receipts", {"receipts": [r.to_json() for r in receipts]}
        )
        promises = answer.get("promises") if isinstance(answer, dict) else None
        if not isinstance(promises, list) or len(promises) != len(receipts):
            raise NetworkError("server answered receipts without one promise each")
        genesis = core.genesis()
        out = []
        for receipt, raw in zip(receipts, promises, strict=True):
            promise = verified_promise({"promise": raw}, genesis, receipt.leaf)
            self.logsync.keep_promise(promise)
            out.append(promise)
        return out

    async def _send_grant_receipts(self, granted: list[tuple[int, str, str | None]]) -> int:
        """Receipts for drafts read through a history grant: ``history.received`` acts
        (protocol.grants), which say they came through the grant."""
        core = self.core
        grants = core.log.ledger.act_state(GRANTS.name)
        if not granted or self._acts is None or not isinstance(grants, GrantState):
            return 0
        me = core.device_id
        for index, kind, error in granted:
            reader = grants.readers.get(index, {}).get(me)
            done = me in grants.receipts.get(index, {})
            if reader is not None and not done:
                body = grant_receipt_body(
                    index=index,
                    entry=core.log.leaf(index),
                    grant=reader.grant,
                    kind=kind,
                    reason=error if kind != RECEIVED else None,
                )
                await self._acts.submit(RECEIPT_KIND, body)
            core.state.mark_draft(index, receipt=kind)
        return len(granted)

    async def ack(self, index: int) -> Sent:
        """Sign an ``acknowledged`` receipt (after our ``received`` one is logged)."""
        core = self.core
        core.check_not_frozen()
        await self._ensure_opened(index)
        log = core.log
        header = log.draft(index)
        if header.sender == core.device_id:
            raise UsageError("you cannot acknowledge your own draft")
        state = log.ledger.drafts[header.leaf]
        if core.device_id in state.acknowledged:
            raise UsageError(f"draft {index} is already acknowledged")
        if core.device_id not in state.received:
            await self.send_pending()
            state = core.log.ledger.drafts[header.leaf]
            if core.device_id not in state.received:
                raise UsageError(f"draft {index} has no logged 'received' receipt from you yet")
        if self._require_current is not None:
            await self._require_current()
        receipt = make_receipt(
            device=core.keys, header=header, index=index, kind=ACKNOWLEDGED, time=now_ms()
        )
        (promise,) = await self.post([receipt])
        await self.logsync.wait_for(promise.index)
        return Sent(index=promise.index, leaf=receipt.leaf)

    def status(self, index: int) -> ReceiptStatus:
        """Receipts for the draft at ``index``, from the verified log."""
        log = self.core.log
        header = log.draft(index)
        state = log.ledger.drafts[header.leaf]
        roster = log.ledger.roster
        flagged = set()
        for i in state.receipt_indices:
            entry = log.parsed.get(i)
            if isinstance(entry, Receipt) and roster.compromised(entry.device, i) is not None:
                flagged.add(entry.device)
        lines = []
        for device in header.recipients:
            if device == header.sender:
                continue
            # Members removed since keep their devices in the roster's record of them.
            member = _member_of_device(roster, device)
            received = state.received.get(device)
            acked = state.acknowledged.get(device)
            rejected = state.rejected.get(device)
            lines.append(
                ReceiptLine(
                    member=member,
                    device=device,
                    received=received.time if received else None,
                    acknowledged=acked.time if acked else None,
                    rejected=rejected.reason if rejected else None,
                    compromised=device in flagged,
                )
            )
        lines.sort(key=lambda line: (line.member, line.device))
        grants = log.ledger.act_state(GRANTS.name)
        readers = []
        if isinstance(grants, GrantState):
            answered = grants.receipts.get(index, {})
            for r in readers_of(grants, index):
                got = answered.get(r.device)
                readers.append(
                    ReceiptLine(
                        member=r.member,
                        device=r.device,
                        received=got.time if got is not None and got.kind == RECEIVED else None,
                        acknowledged=None,
                        rejected=got.reason if got is not None else None,
                        grant=r.grant,
                    )
                )
        return ReceiptStatus(
            index=index,
            sender=log.origins[index].member,
            channel=header.channel,
            lines=tuple(lines),
            sender_compromised=roster.compromised(header.sender, index) is not None,
            readers=tuple(readers),
        )


def _member_of_device(roster: Roster, device: bytes) -> str:
    """The member a device belongs (or belonged) to."""
    current = roster.devices.get(DeviceId(device))
    if current is not None:
        return current
    for member in roster.members.values():
        if device in member.devices:
            return member.id
    former = roster.device_public(device)
    return former[0] if former is not None else b64e(device)
