"""Receipts: batches logged all-or-nothing, and who may list a draft's receipts."""

from __future__ import annotations

from collections.abc import Sequence

from protocol import crypto
from protocol.errors import DuplicateError
from protocol.receipt import Promise, Receipt
from protocol.roster import ROLE_MEDIATOR
from server.clock import Clock, check_time
from server.errors import ForbiddenError, NotFoundError
from server.services.auth import Caller
from server.services.sequencer import Sequencer
from server.services.state import LogState
from server.storage.db import Store
from server.storage.relay import draft_audience_txn, receipts_for_draft_txn

MAX_BATCH = 256
READERS = (ROLE_MEDIATOR, "auditor")
"""Roles that may list any draft's receipts, besides its sender and recipients."""


class ReceiptService:
    """Submit receipt batches; list a draft's receipts for those who may see them."""

    def __init__(
        self,
        *,
        state: LogState,
        store: Store,
        sequencer: Sequencer,
        clock: Clock,
        max_skew: float,
    ) -> None:
        self._state = state
        self._store = store
        self._sequencer = sequencer
        self._clock = clock
        self._max_skew_ms = int(max_skew * 1000)

    async def submit(self, caller: Caller, receipts: Sequence[Receipt]) -> list[Promise]:
        """Log every receipt or none.

        Every receipt must be the caller's own.  At most one per draft: the batch is
        validated against the log as it stood before it, which is what makes checking
        all receipts first and then applying them all-or-nothing (see the sequencer).
        """
        self._state.require_ledger()
        self._state.require_writable()
        now = self._clock()
        drafts: set[int] = set()
        for receipt in receipts:
            if not crypto.equal(receipt.device, caller.device):
                raise ForbiddenError("every receipt must be signed by the calling device")
            check_time(receipt.time, now=now, max_skew_ms=self._max_skew_ms, what="receipt")
            if receipt.index in drafts:
                raise DuplicateError("a batch holds at most one receipt per draft")
            drafts.add(receipt.index)
        return await self._sequencer.submit(receipts, group=True)

    async def for_draft(self, caller: Caller, index: int) -> list[tuple[int, bytes]]:
        """Receipts of the draft at ``index`` for its sender, recipients, mediator, auditors."""
        self._state.require_ledger()
        audience = await self._store.read(draft_audience_txn, index, caller.device)
        if audience is None:
            raise NotFoundError("no such draft")
        sender_member, is_recipient = audience
        if not (is_recipient or caller.member.id == sender_member or caller.role in READERS):
            raise NotFoundError("no such draft")
        return await self._store.read(receipts_for_draft_txn, index)
