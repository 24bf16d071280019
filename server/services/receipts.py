"""Receipts: batches logged all-or-nothing, and who may list a draft's receipts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from protocol import crypto
from protocol.encoding import parse
from protocol.errors import DuplicateError
from protocol.ledger import Ledger
from protocol.merkle import LeafHash, leaf_hash
from protocol.receipt import ACKNOWLEDGED, RECEIVED, Promise, Receipt
from protocol.roster import ROLE_MEDIATOR
from server.clock import Clock, check_time
from server.errors import ForbiddenError, NotFoundError, UnavailableError
from server.services.auth import Caller
from server.services.sequencer import Sequencer
from server.services.state import LogState
from server.storage.db import Store
from server.storage.log import promise_txn
from server.storage.relay import may_see_receipts_txn, receipts_for_draft_txn

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
        ledger = self._state.require_ledger()
        drafts: set[int] = set()
        for receipt in receipts:
            if not crypto.equal(receipt.device, caller.device):
                raise ForbiddenError("every receipt must be signed by the calling device")
            if receipt.index in drafts:
                raise DuplicateError("a batch holds at most one receipt per draft")
            drafts.add(receipt.index)
        # A retry of a batch that was logged (its answer lost to a crash or the network)
        # gets the original promises, as a resent draft upload does.
        existing = await self._existing(ledger, receipts)
        if existing is not None:
            return existing
        self._state.require_writable()
        now = self._clock()
        for receipt in receipts:
            check_time(receipt.time, now=now, max_skew_ms=self._max_skew_ms, what="receipt")
        try:
            return await self._sequencer.submit(receipts, group=True)
        except DuplicateError:
            # The same batch may have raced us into the log.
            existing = await self._existing(self._state.require_ledger(), receipts)
            if existing is None:
                raise
            return existing

    async def _existing(self, ledger: Ledger, receipts: Sequence[Receipt]) -> list[Promise] | None:
        """The promises of ``receipts`` if every one is already logged byte for byte."""
        found: list[tuple[int, list[int], LeafHash]] = []
        for receipt in receipts:
            leaf = ledger.index.leaf_at(receipt.index)
            draft = None if leaf is None else ledger.index.draft(leaf)
            if draft is None:
                return None
            logged = {RECEIVED: draft.received, ACKNOWLEDGED: draft.acknowledged}.get(
                receipt.kind, draft.rejected
            ).get(receipt.device)
            if logged is None or not crypto.equal(logged.leaf, receipt.leaf):
                return None
            found.append((draft.index, list(draft.receipt_indices), receipt.leaf))
        return [await self._promise(*item) for item in found]

    async def _promise(self, draft_index: int, indices: list[int], leaf: LeafHash) -> Promise:
        """The promise of the logged receipt ``leaf`` for the draft at ``draft_index``."""
        for index in indices:
            pending = self._sequencer.pending(index)
            if pending is not None:
                for promise in await asyncio.shield(pending):
                    if crypto.equal(promise.leaf, leaf):
                        return promise
        for index, body in await self._store.read(receipts_for_draft_txn, draft_index):
            if crypto.equal(leaf_hash(body), leaf):
                raw = await self._store.read(promise_txn, index)
                if raw is not None:
                    return Promise.from_json(parse(raw))
        raise UnavailableError("the original receipt is not committed yet; retry")

    async def for_draft(self, caller: Caller, index: int) -> list[tuple[int, bytes]]:
        """Receipts of the draft at ``index`` for its sender, recipients, mediator, auditors."""
        self._state.require_ledger()
        # The same work and the same answer whether the draft does not exist or the
        # caller may not see it (storage/relay.py may_see_receipts_txn).
        allowed = await self._store.read(
            may_see_receipts_txn, index, caller.device, caller.member.id, caller.role in READERS
        )
        if not allowed:
            raise NotFoundError("no such draft")
        return await self._store.read(receipts_for_draft_txn, index)
