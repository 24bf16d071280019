"""What the ledger keeps per draft: :class:`DraftState` and the :class:`LedgerIndex` it
lives behind (see :mod:`protocol.ledger`, "Indexes").

Its own module so that act families (:mod:`protocol.acts`), which the ledger consults,
can look drafts up without importing the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from protocol.envelope import DraftHeader
from protocol.keys import DeviceId
from protocol.merkle import LeafHash
from protocol.receipt import ACKNOWLEDGED, RECEIVED, REJECTED, Receipt


@dataclass(slots=True, kw_only=True)
class DraftState:
    """A logged draft and the receipts logged for it so far."""

    index: int
    header: DraftHeader
    sender_member: str
    received: dict[DeviceId, Receipt] = field(default_factory=dict)
    acknowledged: dict[DeviceId, Receipt] = field(default_factory=dict)
    rejected: dict[DeviceId, Receipt] = field(default_factory=dict)
    receipt_indices: list[int] = field(default_factory=list)

    def missing(self, kind: str) -> list[DeviceId]:
        """Recipients other than the sending device without a receipt of ``kind``
        (for ``received``, a rejection counts as an answer)."""
        have = self.acknowledged if kind == ACKNOWLEDGED else {**self.received, **self.rejected}
        return [d for d in self.header.recipients if d not in have and d != self.header.sender]


class LedgerIndex(Protocol):
    """Where a :class:`Ledger` keeps what grows with the log (see the module docstring).

    Lookups answer for every draft and receipt applied so far, including any not yet
    persisted by whoever stores the log.  ``add_draft`` and ``add_receipt`` are called
    only after the ledger has checked the entry, so they never fail on a rule.
    """

    def draft(self, leaf: LeafHash) -> DraftState | None:
        """The draft whose entry has this leaf hash."""
        ...

    def leaf_at(self, index: int) -> LeafHash | None:
        """The leaf hash of the draft at log ``index`` (``None``: no draft there)."""
        ...

    def message(self, sender: DeviceId, msg: bytes) -> LeafHash | None:
        """The draft ``sender`` logged with message id ``msg``."""
        ...

    def versions(self, draft_id: bytes) -> Mapping[LeafHash, int] | None:
        """Leaf -> version of every logged version of ``draft_id`` (``None``: unknown)."""
        ...

    def channel_of(self, draft_id: bytes) -> str | None:
        """The channel of ``draft_id``'s first version."""
        ...

    def add_draft(self, state: DraftState) -> None:
        """Record a newly applied draft."""
        ...

    def add_receipt(self, state: DraftState, receipt: Receipt, index: int) -> None:
        """Record a receipt at log ``index`` for the draft ``state`` (as returned by
        :meth:`draft`): add it to the matching per-kind map and ``receipt_indices``."""
        ...

    def drafts_map(self) -> Mapping[LeafHash, DraftState]:
        """Every draft by leaf (iteration may be slow: reports, not the hot path)."""
        ...


def record_receipt(state: DraftState, receipt: Receipt, index: int) -> None:
    """Add ``receipt`` (logged at ``index``) to ``state``: what every index does."""
    kind = receipt.kind
    if kind == RECEIVED:
        target = state.received
    elif kind == ACKNOWLEDGED:
        target = state.acknowledged
    elif kind == REJECTED:
        target = state.rejected
    else:
        raise KeyError(kind)
    target[receipt.device] = receipt
    state.receipt_indices.append(index)


class MemoryLedgerIndex:
    """The default :class:`LedgerIndex`: everything in dicts (clients, auditors, tests)."""

    def __init__(self) -> None:
        self.drafts: dict[LeafHash, DraftState] = {}
        self.draft_at: dict[int, LeafHash] = {}
        self.versions_of: dict[bytes, dict[LeafHash, int]] = {}
        self.draft_channel: dict[bytes, str] = {}
        self.msg_ids: dict[tuple[DeviceId, bytes], LeafHash] = {}

    def draft(self, leaf: LeafHash) -> DraftState | None:
        return self.drafts.get(leaf)

    def leaf_at(self, index: int) -> LeafHash | None:
        return self.draft_at.get(index)

    def message(self, sender: DeviceId, msg: bytes) -> LeafHash | None:
        return self.msg_ids.get((sender, msg))

    def versions(self, draft_id: bytes) -> Mapping[LeafHash, int] | None:
        return self.versions_of.get(draft_id)

    def channel_of(self, draft_id: bytes) -> str | None:
        return self.draft_channel.get(draft_id)

    def add_draft(self, state: DraftState) -> None:
        h = state.header
        leaf = h.leaf
        self.drafts[leaf] = state
        self.draft_at[state.index] = leaf
        self.versions_of.setdefault(h.draft, {})[leaf] = h.version
        self.draft_channel.setdefault(h.draft, h.channel)
        self.msg_ids[(h.sender, h.msg)] = leaf

    add_receipt = staticmethod(record_receipt)  # (one call fewer per receipt)

    def drafts_map(self) -> Mapping[LeafHash, DraftState]:
        return self.drafts
