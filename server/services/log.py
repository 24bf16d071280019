"""Reading the log: checkpoints with cosignatures, entry ranges, proofs; cosigning.

Everything served stays within the committed tree.  Proofs and roots at any size read
O(log n) stored nodes, with one query per proof (:class:`~server.storage.log.SqliteNodes`).
"""

from __future__ import annotations

import sqlite3

from protocol import merkle
from protocol.checkpoint import (
    MAX_SIGNATURES,
    Checkpoint,
    NoteSignature,
    SignedNote,
    parse_note,
)
from protocol.errors import CheckpointError
from protocol.evidence import quorum_cosigners
from server.clock import Clock
from server.errors import BadQueryError, NotFoundError
from server.services.state import LogState
from server.storage.db import Store
from server.storage.log import (
    SqliteNodes,
    checkpoint_txn,
    checkpoint_with_cosignatures_txn,
    entries_range_txn,
    upsert_cosignature_txn,
)

MAX_ENTRIES = 1000
MAX_ENTRIES_BYTES = 8 * 1024 * 1024
"""A range answer stops early past this many entry bytes; clients continue from there."""


def _inclusion_txn(conn: sqlite3.Connection, index: int, size: int) -> list[bytes]:
    return merkle.inclusion_proof(index, size, SqliteNodes(conn))


def _consistency_txn(conn: sqlite3.Connection, old: int, new: int) -> list[bytes]:
    return merkle.consistency_proof(old, new, SqliteNodes(conn))


class LogService:
    """Read the committed log and collect witness cosignatures."""

    def __init__(self, *, state: LogState, store: Store, clock: Clock) -> None:
        self._state = state
        self._store = store
        self._clock = clock

    async def checkpoint(self, size: int | None) -> bytes:
        """The checkpoint note (latest, or signed at ``size``) with its cosignatures."""
        self._state.require_ledger()
        found = await self._store.read(checkpoint_with_cosignatures_txn, size)
        if found is None:
            raise NotFoundError("no checkpoint at that size")
        row, lines = found
        # The stored note ends with the log's signature line; cosignature lines follow it.
        return row.note + "".join(lines[: MAX_SIGNATURES - 1]).encode("utf-8")

    async def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """Entries ``[start, end)`` within the committed log, at most 1000."""
        self._state.require_ledger()
        if start < 0 or end < start:
            raise BadQueryError("need 0 <= start <= end")
        end = min(end, start + MAX_ENTRIES, self._state.committed_size)
        if end <= start:
            return []
        return await self._store.read(entries_range_txn, start, end, MAX_ENTRIES_BYTES)

    async def inclusion(self, index: int, size: int) -> list[bytes]:
        """Audit path of entry ``index`` in the tree of ``size`` (``size`` committed)."""
        self._state.require_ledger()
        if not 0 <= index < size <= self._state.committed_size:
            raise BadQueryError("need 0 <= index < size <= the committed log size")
        return await self._store.read(_inclusion_txn, index, size)

    async def consistency(self, old: int, new: int) -> list[bytes]:
        """Consistency proof from ``old`` to ``new`` (both within the committed log)."""
        self._state.require_ledger()
        if not 0 <= old <= new <= self._state.committed_size:
            raise BadQueryError("need 0 <= old <= new <= the committed log size")
        return await self._store.read(_consistency_txn, old, new)

    async def cosign(self, size: int, line: str) -> list[str]:
        """Store a witness cosignature of the checkpoint signed at ``size``.

        It must verify under a key that the current roster gives that witness name
        (``Roster.witnesses``).  Returns every witness that has cosigned that size.
        """
        ledger = self._state.require_ledger()
        self._state.require_writable()
        sig = NoteSignature.from_line(line)
        row = await self._store.read(checkpoint_txn, size)
        if row is None:
            raise NotFoundError("no checkpoint was signed at that size")
        cp = Checkpoint.from_body(parse_note(row.note).text)
        keys = ledger.roster.witnesses().get(sig.name)
        if keys is None:
            raise CheckpointError("not a witness of these talks")
        note = SignedNote(text=cp.body(), signatures=(sig,))
        if sig.name not in quorum_cosigners(cp, note, {sig.name: keys}):
            raise CheckpointError("the cosignature does not verify for that witness")
        return await self._store.write(
            upsert_cosignature_txn, size, sig.name, sig.line(), self._clock()
        )
