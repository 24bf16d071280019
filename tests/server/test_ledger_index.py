"""The SQLite ledger index answers exactly what the in-memory one does."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from protocol.crypto import Rng
from protocol.ledger import DraftState, Ledger, MemoryLedgerIndex
from protocol.records import MessageId
from server.services.recovery import recover_txn
from server.storage.db import connect
from server.storage.ledger_index import SqliteLedgerIndex
from tests.server.harness import ORIGIN, Harness
from tests.server.test_recovery import _populated


def _state(d: DraftState) -> tuple[object, ...]:
    return (
        d.index,
        d.header.leaf,
        d.sender_member,
        {k: v.leaf for k, v in d.received.items()},
        {k: v.leaf for k, v in d.acknowledged.items()},
        {k: v.leaf for k, v in d.rejected.items()},
        list(d.receipt_indices),
    )


def _recover(h: Harness, *, full: bool) -> Ledger:
    conn = connect(h.settings.db_path, readonly=True)
    try:
        conn.execute("BEGIN")
        out = recover_txn(
            conn, origin=ORIGIN, log_public=h.init.log_key, checkpoint_file=None, full=full
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    assert out.problem is None and out.ledger is not None
    return out.ledger


async def test_resumed_ledger_equals_the_replayed_one(tmp_path: Path, rng: Rng) -> None:
    h = await _populated(tmp_path, rng)
    full = _recover(h, full=True)
    resumed = _recover(h, full=False)
    assert isinstance(full.index, MemoryLedgerIndex)
    assert isinstance(resumed.index, SqliteLedgerIndex)
    assert resumed.size == full.size
    assert resumed.counters == full.counters
    assert resumed.roster.head == full.roster.head
    memory = full.index
    assert list(resumed.drafts) == list(memory.drafts)
    for leaf, state in memory.drafts.items():
        got = resumed.index.draft(leaf)
        assert got is not None and _state(got) == _state(state)
        assert resumed.index.leaf_at(state.index) == leaf
        h_ = state.header
        assert resumed.index.message(h_.sender, h_.msg) == leaf
        assert resumed.index.versions(h_.draft) == memory.versions(h_.draft)
        assert resumed.index.channel_of(h_.draft) == memory.channel_of(h_.draft)
    assert resumed.index.leaf_at(0) is None
    assert resumed.index.versions(b"\x00" * 16) is None


async def test_a_message_id_found_absent_is_remembered_until_the_ledger_adds_it(
    tmp_path: Path, rng: Rng
) -> None:
    h = await _populated(tmp_path, rng)
    memory = _recover(h, full=True).index
    assert isinstance(memory, MemoryLedgerIndex)
    known = next(iter(memory.drafts.values()))
    header = known.header
    index = SqliteLedgerIndex(h.settings.db_path)
    queries: list[str] = []
    index._conn.set_trace_callback(queries.append)
    try:
        fresh = MessageId(b"\x01" * 16)  # a message id this sender never used
        assert index.message(header.sender, fresh) is None
        assert index.message(header.sender, fresh) is None  # remembered: no second query
        assert len(queries) == 1
        # An id the store holds is still found (and not remembered as absent).
        assert index.message(header.sender, header.msg) == header.leaf
        # Once the ledger adds a draft with the remembered id, it is found.
        added = dataclasses.replace(header, msg=fresh)
        index.add_draft(DraftState(index=10**9, header=added, sender_member="x"))
        assert index.message(header.sender, fresh) == added.leaf
        assert (header.sender, fresh) not in index._absent
    finally:
        index.close()
